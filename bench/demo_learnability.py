"""Are the demonstrations learnable? A policy with perfect perception, trained on them, evaluated closed loop.

Before minutes (or GPU hours) of VLA training, this asks whether the expert's demonstrations can be imitated
at all. For each expert noise level (DART: noisy execution, intended actions as labels) and task it

1. records ``--episodes`` successful expert demonstrations without cameras (fast), the state extended with
   privileged simulator state: the world pose of every body outside the robot (what perfect vision would
   recover);
2. trains a small MLP (state -> one action, MSE) on them;
3. evaluates it closed loop on ``--eval`` episodes (the tuning split's seeds, ``policies/seeds.py``: this bench is for choosing a recipe), once with the
   privileged state and once with a per-episode error of ``--perception-error`` m added to every body
   position (an imperfect vision encoder), and prints success rates side by side.

A noise level where even this policy fails is one no VLA will learn from; one that survives the perception
error gives a VLA room for imprecise localization. Figures: docs/benchmarks.md, "The CPU demo recipe".

    .venv/bin/python bench/demo_learnability.py --tasks OpenDrawer CloseDrawer --noise 0 0.1 0.2
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import torch

import sim
from policies.reports.results import rate_with_interval
from policies.rollout import run_episode
from policies.seeds import TUNE, wilson_interval
from sim.contract import OBS_STATE
from sim.experts import ScriptedExpert

EVAL_SEED = TUNE.start


class PrivilegedState(gym.ObservationWrapper):
    """Appends the world position and orientation (first two rotation columns) of every body outside the
    robot to the state. ``error`` (m): a per-episode offset added to those positions, a perception error."""

    def __init__(self, env, error: float = 0.0):
        super().__init__(env)
        self.error = error
        self._offset = np.zeros(3)
        world = env.unwrapped.world
        robot = world.body_id("link0")
        self._bodies = [b for b in range(1, world.model.nbody) if world.model.body_rootid[b] != robot]

    def reset(self, *, seed=None, options=None):
        self._offset = np.random.default_rng(seed).normal(0.0, self.error, 3) if self.error else 0.0
        return super().reset(seed=seed, options=options)

    def observation(self, obs: dict) -> dict:
        data = self.env.unwrapped.world.data
        bodies = self._bodies
        pose = np.concatenate([data.xpos[bodies] + self._offset, data.xmat[bodies, :6]], axis=1)  # (N, 9)
        return {**obs, OBS_STATE: np.concatenate([obs[OBS_STATE], pose.ravel()]).astype(np.float32)}


class MLPPolicy:
    """The ``Policy`` interface over an MLP on the (privileged) state: one action per step."""

    def __init__(self, net: torch.nn.Module, mean: np.ndarray, std: np.ndarray):
        self.net, self.mean, self.std = net, mean, std

    def reset(self) -> None:
        pass

    def infer(self, obs: dict) -> dict[str, np.ndarray]:
        x = torch.from_numpy((obs[OBS_STATE] - self.mean) / self.std).double()[None]
        with torch.no_grad():
            return {"actions": self.net(x).clamp(-1, 1).double().numpy()}  # (1, 7)


def demonstrations(task: str, noise: float, episodes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(states, intended actions, expert success rate) of ``episodes`` successful expert episodes."""
    env = PrivilegedState(sim.make(task, cameras=()))
    states, actions, tried, seed = [], [], 0, 0
    while len(states) < episodes:
        tried += 1
        seed += 1
        result = run_episode(env, ScriptedExpert(env, noise=noise, seed=seed), seed, record_steps=True)
        if result.success:
            states.append(result.steps.state)
            actions.append(result.steps.actions)
        if tried > 10 * episodes:
            raise RuntimeError(f"the {task} expert at noise {noise} succeeded {len(states)} times in {tried}")
    env.close()
    return np.concatenate(states), np.concatenate(actions), episodes / tried


def train(states: np.ndarray, actions: np.ndarray, steps: int, seed: int) -> MLPPolicy:
    torch.manual_seed(seed)
    mean, std = states.mean(0), states.std(0) + 1e-6
    x, y = torch.from_numpy((states - mean) / std), torch.from_numpy(actions)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 256),
        torch.nn.GELU(),
        torch.nn.Linear(256, 256),
        torch.nn.GELU(),
        torch.nn.Linear(256, y.shape[1]),
    ).double()
    x, y = x.double(), y.double()
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        batch = torch.randint(len(x), (256,))
        loss = torch.nn.functional.mse_loss(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return MLPPolicy(net.eval(), mean, std)


def success_rate(task: str, policy: MLPPolicy, episodes: int, error: float) -> str:
    """The success rate with its Wilson 95% interval, as the reports print it."""
    env = PrivilegedState(sim.make(task, cameras=()), error)
    wins = sum(run_episode(env, policy, EVAL_SEED + i).success for i in range(episodes))
    env.close()
    return rate_with_interval(wins / episodes, wilson_interval(wins, episodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["OpenDrawer", "CloseDrawer"])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.1, 0.2])
    parser.add_argument("--episodes", type=int, default=150, help="demonstrations per task")
    parser.add_argument("--eval", type=int, default=50, help="closed-loop episodes per task")
    parser.add_argument("--steps", type=int, default=4000, help="MLP training steps (batch 256)")
    parser.add_argument("--perception-error", type=float, default=0.02, help="m, std of the position error")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{args.episodes} demonstrations and {args.eval} closed-loop episodes per task\n")
    error = f"+{args.perception_error * 100:g} cm error"
    print(f"| noise | task | expert success | frames/episode | MLP success | MLP success, {error} |")
    print("|---:|---|---:|---:|---:|---:|")
    for noise in args.noise:
        for task in args.tasks:
            started = time.perf_counter()
            states, actions, expert = demonstrations(task, noise, args.episodes)
            policy = train(states, actions, args.steps, args.seed)
            exact = success_rate(task, policy, args.eval, 0.0)
            blurred = success_rate(task, policy, args.eval, args.perception_error)
            print(
                f"| {noise:g} | {task} | {expert:.0%} | {len(states) / args.episodes:.1f} | {exact} | "
                f"{blurred} |  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
