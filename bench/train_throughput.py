"""Training throughput of the VLA: samples per second of forward + backward + AdamW step.

    .venv/bin/python bench/train_throughput.py                            # tiny on CPU (2 threads)
    .venv/bin/python bench/train_throughput.py --llm smollm2-135m --device cuda --dtype bf16 --batch-size 64

The batch is fixed and synthetic (two 128x128 cameras, 17-D state, a 10 x 7 action chunk, a typical
instruction), so the figure is the model's own cost, without data loading (bench/dataloader.py measures
that: it must stay above this figure for the accelerator never to wait).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from inference import fake_batch, fake_stats  # bench/inference.py (scripts run from bench/)

from vla.model.config import ConnectorConfig, LLMConfig, ModelConfig, VisionConfig
from vla.model.vla import VLA


def training_batch(config: ModelConfig, batch_size: int, device: str) -> dict:
    one = fake_batch(config, device)
    batch = {
        "images": {c: image.repeat(batch_size, 1, 1, 1) for c, image in one["images"].items()},
        "state": one["state"].repeat(batch_size, 1),
        "instruction": one["instruction"] * batch_size,
    }
    batch["actions"] = torch.rand(batch_size, config.chunk_size, config.action_dim, device=device) * 2 - 1
    batch["action_mask"] = torch.ones(batch_size, config.chunk_size, dtype=torch.bool, device=device)
    return batch


def samples_per_second(args) -> float:
    config = ModelConfig(
        vision=VisionConfig(kind="resnet18"),
        connector=ConnectorConfig(kind="mlp"),
        llm=LLMConfig(name=args.llm),
        chunk_size=10,
    )
    vla = VLA(config, fake_stats(config.state_dim, config.action_dim)).to(args.device).train()
    optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=1e-4)
    batch = training_batch(config, args.batch_size, args.device)
    autocast = (
        torch.autocast(args.device, dtype=torch.bfloat16)
        if args.dtype == "bf16"
        else contextlib.nullcontext()
    )
    times = []
    for step in range(args.warmup + args.steps):
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            loss = vla.loss(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return args.batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llm", default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rate = samples_per_second(args)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} threads"
    print(f"{args.llm}, batch {args.batch_size}, {args.dtype}, {where}: {rate:.1f} samples/s")


if __name__ == "__main__":
    main()
