"""How far the controller's commanded TCP position leads the measured one in the scripted demonstrations.

The expert's label is computed from the commanded pose (``sim.experts``), which the observation's state does
not hold: the state shows the measured pose. If the lead were large, the state could not explain the labels,
one candidate cause of a policy that learns less with its state than without it (issue 12). This measures
the lead on the frames a recording would keep, beside the size of the label's own translation.

    python bench/commanded_lead.py episodes=20 noise=0.1
"""

from __future__ import annotations

import sys

import numpy as np

import sim
from sim.contract import LABEL_ACTIONS
from sim.controller import MAX_TRANSLATION


def measure(task: str, episodes: int, noise: float) -> dict[str, float]:
    env = sim.make(task, cameras=())
    leads, steps = [], []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert = sim.make_expert(env, noise=noise, seed=seed)
        for _ in range(env.unwrapped.task.max_steps):
            out = expert.infer(obs)
            controller, world = env.unwrapped.controller, env.unwrapped.world
            leads.append(np.linalg.norm(controller.target_pos - world.tcp_pos))
            label = out.get(LABEL_ACTIONS, out["actions"])[0]
            steps.append(np.linalg.norm(label[:3]) * MAX_TRANSLATION)
            obs, _, terminated, truncated, _ = env.step(out["actions"][0])
            if terminated or truncated:
                break
    leads, steps = np.array(leads) * 1000, np.array(steps) * 1000
    return {
        "lead_mean_mm": leads.mean(),
        "lead_p90_mm": np.percentile(leads, 90),
        "lead_max_mm": leads.max(),
        "label_step_median_mm": np.median(steps),
        "lead_over_step_median": np.median(leads / np.maximum(steps, 1e-3)),
    }


def main(argv: list[str]) -> None:
    options = dict(arg.split("=", 1) for arg in argv)
    episodes, noise = int(options.get("episodes", 20)), float(options.get("noise", 0.1))
    print(f"{episodes} expert episodes per task, DART noise {noise}; millimetres")
    print("| task | lead mean | lead p90 | lead max | label step (median) | lead / step (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for task in sim.list_tasks():
        m = measure(task, episodes, noise)
        print(
            f"| {task} | {m['lead_mean_mm']:.1f} | {m['lead_p90_mm']:.1f} | {m['lead_max_mm']:.1f} | "
            f"{m['label_step_median_mm']:.1f} | {m['lead_over_step_median']:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
