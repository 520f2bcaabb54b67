"""Training-step cost of a recipe's model on real samples, variant against variant, side by side.

    .venv/bin/python bench/train_step.py runs/demo/data                                   # configs/demo.yaml
    .venv/bin/python bench/train_step.py runs/demo/data --variant chunk_size=4,infer_actions=1 \
        --variant vision.kind=efficientnet_lite0,vision.width=128,vision.stages=4

Each variant is the recipe's ``train.model:`` section (``--config``, default configs/demo.yaml) with
``key=value`` overrides (comma-separated; values parsed as YAML). Times forward + backward + AdamW under the
recipe's precision on batches drawn from the dataset's memmap cache (data loading included, as in vla-train),
the median of ``--steps`` steps after 3 warm-up steps, and prints ms/step and the ratio to the first variant.
Nothing else may run on the cores meanwhile: two jobs on 2 cores halve each other.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict

import torch
import yaml
from omegaconf import OmegaConf

from vla.data.dataset import collate
from vla.data.meta import load_meta
from vla.model.config import ModelConfig
from vla.model.efficientnet import NAME as LITE0
from vla.model.vla import VLA
from vla.train.data import fit_model_config, make_datasets
from vla.train.features import attach_trunk_maps
from vla.train.loop import autocast


def variant_config(base: dict, overrides: str) -> ModelConfig:
    config = OmegaConf.create(base)
    for item in filter(None, overrides.split(",")):
        key, value = item.split("=", 1)
        OmegaConf.update(config, key, yaml.safe_load(value) if value else "", merge=True)
    return ModelConfig(**OmegaConf.to_container(config))


def time_variant(root, model: ModelConfig, precision: str, batch_size: int, steps: int) -> float:
    meta = load_meta(root)
    model = fit_model_config(model, meta)
    train, _ = make_datasets(root, model, meta, 0.0, "memmap")
    torch.manual_seed(0)
    vla = VLA(model, train.stats)
    vla.fit_instructions(list(meta.tasks))
    if model.vision.kind == LITE0:  # as vla-train: the trunk's maps cached once (built here if missing)
        attach_trunk_maps([train], vla.vision.backbones[0].trunk)
    optimizer = torch.optim.AdamW(
        [p for p in vla.parameters() if p.requires_grad], lr=1e-4, fused=True
    )  # as vla-train
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(steps + 3):
        start = time.perf_counter()
        index = torch.randint(len(train), (batch_size,), generator=generator).tolist()
        batch = collate([train[i] for i in index])
        with autocast(precision, torch.device("cpu")):
            loss = vla.loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--variant", action="append", default=None, help="key=value,... on train.model:")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config) as file:
        recipe = yaml.safe_load(file).get("train", {})  # vla-demo's train: (vla-train's options)
    base = asdict(ModelConfig(**recipe.get("model", {})))
    variants = [""] + (args.variant or [])
    first = None
    print(f"{'variant':<60} {'ms/step':>8} {'ratio':>6}")
    for overrides in variants:
        seconds = time_variant(
            args.dataset,
            variant_config(base, overrides),
            recipe.get("precision", "fp32"),
            recipe.get("batch_size", 16),
            args.steps,
        )
        first = first or seconds
        print(f"{overrides or '(the recipe)':<60} {seconds * 1e3:8.1f} {seconds / first:6.2f}", flush=True)


if __name__ == "__main__":
    main()
