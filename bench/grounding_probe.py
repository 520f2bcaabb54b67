"""Does a checkpoint's first action depend on which object the instruction names? A fast open-loop probe.

For each scene (a tuning seed) of each language task, every goal the scene offers is named in turn
(``env.reset(seed, options={"goal": ...})``). The policy's first action is compared with the scripted
expert's first action for every goal: the probe counts the scene-goal pairs where the policy's translation
is nearest to the expert's for the named goal (chance: 1 / goals), and reports how much the policy's action
moves when only the instruction changes. Minutes of closed-loop evaluation answer this too, but this
takes seconds, so it can watch checkpoints while a training runs.

    python bench/grounding_probe.py checkpoint=runs/demo/train tasks=[PressButton,PickUp] scenes=30
"""

from __future__ import annotations

import sys

import numpy as np

import sim
from policies.evaluation.evaluate import env_config
from policies.loading import load_policy
from policies.seeds import TUNE


def _first_actions(env, policy, seed: int, goals: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(G, 3) translations of the expert's and of the policy's first action, per named goal."""
    expert, learned = [], []
    for goal in goals:
        obs, _ = env.reset(seed=seed, options={"goal": goal} if goal else None)
        scripted = sim.make_expert(env)
        expert.append(scripted.infer(obs)["actions"][0, :3])
        policy.reset()
        learned.append(np.asarray(policy.infer(obs)["actions"])[0, :3])
    return np.array(expert), np.array(learned)


def probe(policy, task: str, scenes: int) -> dict[str, float]:
    env = sim.make(task, **vars(env_config(policy, None)))
    hits, pairs, spread = 0, 0, []
    for seed in range(TUNE.start, TUNE.start + scenes):
        env.reset(seed=seed)
        goals = env.unwrapped.task.goals()
        expert, learned = _first_actions(env, policy, seed, goals)
        distances = np.linalg.norm(learned[:, None] - expert[None], axis=-1)  # (named, expert's goal)
        hits += int((distances.argmin(1) == np.arange(len(goals))).sum())
        pairs += len(goals)
        spread.append(np.linalg.norm(learned - learned.mean(0), axis=-1).mean())
    env.close()
    return {"accuracy": hits / pairs, "chance": 1 / len(goals), "spread": float(np.mean(spread))}


def main(argv: list[str]) -> None:
    options = dict(arg.split("=", 1) for arg in argv)
    policy = load_policy(options["checkpoint"])
    tasks = sim.resolve_tasks(options.get("tasks", "[PressButton,PickUp]").strip("[]").split(","))
    scenes = int(options.get("scenes", 30))
    print(f"{options['checkpoint']}: first action nearest the named goal's expert action, {scenes} scenes")
    for task in tasks:
        m = probe(policy, task, scenes)
        print(
            f"{task}: {m['accuracy']:.0%} (chance {m['chance']:.0%}); the action moves "
            f"{m['spread']:.3f} (action units) when only the instruction changes"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
