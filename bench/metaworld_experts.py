"""The experts' ceiling on Meta-World v3: Meta-World's scripted policies through sim.metaworld's adapter.

Every task of ``--tasks`` (an id of sim.metaworld: ``metaworld/mt50`` by default) runs ``--episodes`` episodes
on the held-out seeds (policies.seeds), under the adapter's protocol (500 steps, success ends the episode).
Prints per-task and per-bucket success with 95% Wilson intervals and writes them, with the protocol, as JSON.
Images are not rendered: the experts read the privileged state, and rendering never touches the physics.

    make metaworld
    .venv-metaworld/bin/python bench/metaworld_experts.py --episodes 10 --out docs/results/metaworld_experts.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from policies.seeds import episode_seeds, wilson_interval
from sim import metaworld as mw


def run_task(task: str, seeds: list[int]) -> dict:
    """Success and episode length of the task's expert on each seed."""
    # Meta-World's policies warn on every call that their gains may exceed the action range; we clip anyway.
    warnings.filterwarnings("ignore", message="Constant", category=UserWarning)
    env = mw.make(task, render_images=False)
    expert = mw.metaworld_expert(env)
    successes, lengths, scenes = [], [], set()
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        scenes.add(info["train_task"])
        expert.reset()
        length, terminated, truncated = 0, False, False
        while not (terminated or truncated):  # the env truncates at MAX_STEPS
            obs, _, terminated, truncated, _ = env.step(expert.infer(obs)["actions"][0])
            length += 1
        successes.append(bool(terminated))
        lengths.append(length)
    env.close()
    return {"task": task, "successes": successes, "lengths": lengths, "train_tasks": len(scenes)}


def rate(successes: int, episodes: int) -> dict:
    low, high = wilson_interval(successes, episodes)
    return {"successes": successes, "episodes": episodes, "rate": successes / episodes, "ci95": [low, high]}


def table(title: str, rows: dict[str, dict]) -> str:
    width = max(len(name) for name in rows)
    lines = [f"{title:<{width}}  success   95% CI          n"]
    for name, row in rows.items():
        low, high = row["ci95"]
        lines.append(f"{name:<{width}}  {row['rate']:6.1%}   [{low:5.1%}, {high:5.1%}]  {row['episodes']:4d}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="metaworld/mt50", help="a task or group id of sim.metaworld")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    tasks = mw.resolve(args.tasks)
    seeds = episode_seeds("heldout", args.episodes)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_task, tasks, [seeds] * len(tasks)))
    elapsed = time.perf_counter() - start

    per_task = {r["task"]: rate(sum(r["successes"]), len(r["successes"])) for r in results}
    for r in results:
        per_task[r["task"]]["mean_length"] = round(sum(r["lengths"]) / len(r["lengths"]), 1)
        # Seeds draw MT1's 50 train tasks with replacement: how many distinct scenes the episodes covered.
        per_task[r["task"]]["distinct_train_tasks"] = r["train_tasks"]
        per_task[r["task"]]["failed_seeds"] = [
            s for s, ok in zip(seeds, r["successes"], strict=True) if not ok
        ]
    # A bucket is reported over the tasks of it that ran; mt10 and mt50 only when all of theirs ran.
    groups = [name for name in mw.BUCKETS if set(mw.GROUPS[name]) & set(tasks)]
    groups += [name for name in ("mt10", "mt50") if set(mw.GROUPS[name]) <= set(tasks)]
    per_group = {}
    for name in groups:
        members = [task for task in mw.GROUPS[name] if task in per_task]
        per_group[name] = rate(
            sum(per_task[t]["successes"] for t in members), sum(per_task[t]["episodes"] for t in members)
        )
        per_group[name]["tasks"] = len(members)

    print(table("group", per_group))
    print()
    print(table("task", per_task))
    print(f"\n{len(tasks)} tasks x {args.episodes} episodes in {elapsed:.0f} s")
    if args.out:
        probe = mw.make(tasks[0], render_images=False)
        protocol = probe.describe()
        probe.close()
        for key in ("task", "instruction", "image_size"):
            protocol.pop(key)
        result = {
            "what": "Meta-World's scripted policies (metaworld.policies) through sim.metaworld",
            "protocol": protocol,
            "split": "heldout",
            "seeds": [seeds[0], seeds[-1]],
            "images_rendered": False,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
            "seconds": round(elapsed, 1),
            "groups": per_group,
            "tasks": per_task,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
