"""Closed-loop evaluation throughput: environment steps per second of ``vla-eval`` with the ``tiny`` VLA.

    MUJOCO_GL=egl .venv/bin/python bench/eval_throughput.py                   # num_envs 1, 2, 4
    MUJOCO_GL=egl .venv/bin/python bench/eval_throughput.py --num-envs 1 2 --threads 1 2

The checkpoint is the default ``tiny`` model (ResNet-18 vision, 4-layer Llama, two 128x128 cameras,
chunk 10) with random weights, saved once: throughput does not depend on the weights, and a random policy
never succeeds, so every episode runs to the task's step limit and each configuration steps the same
number of times. Chunks run receding-horizon with ``n_action_steps`` 5 (a batched inference every 5 steps).
The figure is ``evaluate()``'s own wall time, from creating the environments (spawning worker processes
when num_envs > 1) to the last episode's end; the share spent in the policy's forward passes is measured
too. Videos are off (they add a 256x256 render per step while the evaluator looks for clips).

torch and the model are imported inside the functions: spawned environment workers re-import the main
module, and importing torch there would cost each worker seconds and hundreds of MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from policies.evaluation.evaluate import evaluate


class TimedPolicy:
    """A policy that adds up the time its inner policy spends in batched forward passes."""

    def __init__(self, inner):
        self.inner = inner
        self.cameras, self.image_size = inner.cameras, inner.image_size
        self.seconds, self.calls = 0.0, 0

    def reset(self) -> None:
        self.inner.reset()

    def infer(self, obs: dict) -> dict:
        return self.infer_batch([obs])[0]

    def infer_batch(self, observations):
        started = time.perf_counter()
        try:
            return self.inner.infer_batch(observations)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def check_compatible(self, env) -> None:
        self.inner.check_compatible(env)


def tiny_checkpoint(directory: Path) -> Path:
    import torch

    from vla.model.config import ModelConfig
    from vla.model.vla import VLA

    torch.manual_seed(0)
    config = ModelConfig()  # the tiny preset's defaults (configs/model/tiny.yaml)
    stats = {
        "observation.state": {"q01": -np.ones(config.state_dim), "q99": np.ones(config.state_dim)},
        "action": {"q01": -np.ones(config.action_dim), "q99": np.ones(config.action_dim)},
    }
    VLA(config, stats).save(directory)
    return directory


def measure(checkpoint: Path, num_envs: int, args) -> dict:
    from policies.vla_policy import VLAPolicy

    policy = TimedPolicy(VLAPolicy(checkpoint))
    started = time.perf_counter()
    document = evaluate(
        policy,
        [args.task],
        args.episodes,
        num_envs=num_envs,
        split="tune",  # a speed measurement, not a reported success rate
        n_action_steps=args.n_action_steps,
        progress=False,
    )
    wall = time.perf_counter() - started
    steps = document["timing"]["env_steps"]
    return {"steps": steps, "wall": wall, "policy": policy.seconds, "calls": policy.calls}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="torch CPU threads")
    parser.add_argument("--task", default="PickUp")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--n-action-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration; the best is kept")
    args = parser.parse_args()
    import torch

    print(
        f"{cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}; {args.task}, "
        f"{args.episodes} episodes, tiny (2 cameras 128x128, chunk 10), n_action_steps {args.n_action_steps}\n"
    )
    print(
        "| num_envs | torch threads | env steps/s | wall (s) | steps | forward passes | in the policy "
        "| load before |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = tiny_checkpoint(Path(tmp) / "tiny")
        for threads in args.threads:
            torch.set_num_threads(threads)
            for num_envs in args.num_envs:
                load = os.getloadavg()[0]  # other processes on the cores distort these figures badly
                runs = [measure(checkpoint, num_envs, args) for _ in range(args.repeats)]
                best = min(runs, key=lambda run: run["wall"])
                print(
                    f"| {num_envs} | {threads} | {best['steps'] / best['wall']:.1f} | {best['wall']:.1f} "
                    f"| {best['steps']} | {best['calls']} | {best['policy'] / best['wall']:.0%} | {load:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
