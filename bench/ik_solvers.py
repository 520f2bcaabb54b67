"""Cartesian controller IK: our damped least squares (DLS) against the ``mink`` library, on our own model.

Both solvers get the same seeded targets on the ``PickUp`` scene model: from arm states visited by the
scripted expert, the current TCP pose moved by one random full-range action (up to 5 cm and 0.25 rad per
axis, the controller's per-control-step maxima), and the same budget of ``--iterations`` per solve.

* time: microseconds per ``solve_ik(pos, mat)`` call, median over ``--solves`` solves;
* accuracy: TCP position (mm) and orientation (deg) error of the returned joints' forward kinematics
  against the target, median and 95th percentile ("start" is the error before solving);
* closed loop: the scripted expert on ``--episodes`` seeded episodes of each of ``--tasks`` (no cameras),
  ``CartesianController.solve_ik`` as shipped and monkeypatched to mink: success rate, ``env.step``/s.

mink (FrameTask on site ``tcp``, PostureTask to ``HOME_QPOS``, ConfigurationLimit; QP backend daqp) is not
a project dependency: run this in a scratch venv.

    python3 -m venv /tmp/mink-venv && /tmp/mink-venv/bin/pip install -q torch==2.13.0 \\
        && /tmp/mink-venv/bin/pip install -q -e . mink daqp
    MUJOCO_GL=egl /tmp/mink-venv/bin/python bench/ik_solvers.py
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from importlib import metadata

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

import sim
from sim import robot
from sim.controller import MAX_ROTATION, MAX_TRANSLATION, orientation_error, rotvec_to_mat

MINK_DT = 1.0  # mink returns velocity = dq / dt and integrates it back over dt: any dt gives the same dq


class MinkIK:
    """``solve_ik(pos, mat) -> arm joints (7,)`` with mink, from the live state of ``world``."""

    def __init__(self, mink, world, args):
        self.mink, self.world = mink, world
        self.iterations, self.solver, self.damping = args.iterations, args.qp_solver, args.damping
        self.configuration = mink.Configuration(world.model)
        self.frame = mink.FrameTask(robot.TCP_SITE, "site", position_cost=1.0, orientation_cost=1.0)
        self.posture = mink.PostureTask(world.model, cost=args.posture_cost)
        self.tasks = [self.frame, self.posture]
        self.limits = [mink.ConfigurationLimit(world.model)]
        self.failures = 0

    def solve_ik(self, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
        mink, world, configuration = self.mink, self.world, self.configuration
        configuration.update(world.data.qpos.copy())
        posture = world.data.qpos.copy()
        posture[world.arm_qpos_adr] = robot.HOME_QPOS  # other joints are held where they are
        self.posture.set_target(posture)
        self.frame.set_target(mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(mat), pos))
        for _ in range(self.iterations):
            try:
                velocity = mink.solve_ik(
                    configuration, self.tasks, MINK_DT, self.solver, damping=self.damping, limits=self.limits
                )
            except mink.NoSolutionFound:
                self.failures += 1
                break
            configuration.integrate_inplace(velocity, MINK_DT)
        return configuration.q[world.arm_qpos_adr].copy()


def expert_states(task: str, count: int, seed: int) -> list[np.ndarray]:
    """``qpos`` at every control step of seeded scripted-expert episodes, until ``count`` are collected."""
    env = sim.make(task, cameras=())
    expert, states, episode = sim.make_expert(env), [], 0
    while len(states) < count:
        obs, _ = env.reset(seed=seed + episode)
        expert.reset()
        done = False
        while not done and len(states) < count:
            states.append(env.unwrapped.world.data.qpos.copy())
            obs, _, terminated, truncated, _ = env.step(expert.infer(obs)["actions"][0])
            done = terminated or truncated
        episode += 1
    env.close()
    return states


def pose_error(model, scratch, tcp: int, pos, mat) -> tuple[float, float]:
    """(mm, deg) between the TCP of ``scratch.qpos`` and the target pose."""
    mujoco.mj_kinematics(model, scratch)
    mm = 1000 * np.linalg.norm(pos - scratch.site_xpos[tcp])
    deg = np.degrees(np.linalg.norm(orientation_error(mat, scratch.site_xmat[tcp].reshape(3, 3))))
    return float(mm), float(deg)


def bench_solves(args, mink) -> dict[str, np.ndarray]:
    env = sim.make("PickUp", cameras=())
    u = env.unwrapped
    model, world = u.model, u.world
    u.controller.ik_iterations = args.iterations
    solvers = {"DLS (ours)": u.controller.solve_ik}
    if mink is not None:
        solvers[f"mink ({args.qp_solver})"] = MinkIK(mink, world, args).solve_ik
    rng = np.random.default_rng(args.seed)
    scratch = mujoco.MjData(model)
    rows = {name: [] for name in ["start", *solvers]}  # (us, mm, deg) per solve
    for state in expert_states("PickUp", args.solves, args.seed):
        world.data.qpos[:] = state
        mujoco.mj_forward(model, world.data)
        action = rng.uniform(-1, 1, 6)
        pos = world.tcp_pos + action[:3] * MAX_TRANSLATION
        mat = rotvec_to_mat(action[3:6] * MAX_ROTATION) @ world.tcp_mat
        scratch.qpos[:] = state
        rows["start"].append((np.nan, *pose_error(model, scratch, world.tcp_site, pos, mat)))
        for name, solve in solvers.items():
            t0 = time.perf_counter()
            q = solve(pos, mat)
            us = 1e6 * (time.perf_counter() - t0)
            scratch.qpos[world.arm_qpos_adr] = q
            rows[name].append((us, *pose_error(model, scratch, world.tcp_site, pos, mat)))
    env.close()
    return {name: np.asarray(row) for name, row in rows.items()}


def closed_loop(task: str, args, mink) -> dict[str, tuple[float, float, int]]:
    """{solver: (success rate, env steps/s, IK failures)} for the scripted expert on seeded episodes."""
    env = sim.make(task, cameras=())
    u = env.unwrapped
    u.controller.ik_iterations = args.iterations
    expert = sim.make_expert(env)
    variants: dict[str, object] = {"DLS (ours)": None}
    if mink is not None:
        variants[f"mink ({args.qp_solver})"] = MinkIK(mink, u.world, args)
    results = {}
    for name, mink_ik in variants.items():
        if mink_ik is None:
            u.controller.__dict__.pop("solve_ik", None)  # the class's own DLS
        else:
            u.controller.solve_ik = mink_ik.solve_ik  # monkeypatch: apply() calls self.solve_ik
        successes, steps, elapsed = 0, 0, 0.0
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + episode)
            expert.reset()
            done, info = False, {}
            while not done:
                action = expert.infer(obs)["actions"][0]
                t0 = time.perf_counter()
                obs, _, terminated, truncated, info = env.step(action)
                elapsed += time.perf_counter() - t0
                steps += 1
                done = terminated or truncated
            successes += bool(info["success"])
        results[name] = (successes / args.episodes, steps / elapsed, getattr(mink_ik, "failures", 0))
    env.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solves", type=int, default=500, help="IK solves for time and accuracy")
    parser.add_argument("--iterations", type=int, default=3, help="IK iterations per solve, both solvers")
    parser.add_argument("--episodes", type=int, default=20, help="closed-loop episodes per task")
    parser.add_argument("--tasks", nargs="*", default=["PickUp", "Stack", "OpenDrawer"])
    parser.add_argument("--qp-solver", default="daqp", help="qpsolvers backend for mink (daqp, quadprog)")
    parser.add_argument("--damping", type=float, default=0.05**2, help="mink LM damping (ours: 0.05^2)")
    parser.add_argument("--posture-cost", type=float, default=1e-2, help="mink PostureTask cost")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        import mink

        logging.getLogger("mink").setLevel(logging.ERROR)  # joint-limit warnings when fingers press
        version = f"mink {metadata.version('mink')}, qpsolvers {metadata.version('qpsolvers')}"
    except ImportError:
        mink, version = None, "mink not installed (pip install mink daqp): DLS only"
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), "?")
    print(f"{cpu}, {os.cpu_count()} cores; mujoco {mujoco.__version__}; {version}")
    print(f"{args.solves} solves, {args.iterations} iterations each, targets from seed {args.seed}\n")

    rows = bench_solves(args, mink)
    print(f"{'solver':<16}{'us/solve':>10}{'pos mm med':>12}{'p95':>8}{'rot deg med':>13}{'p95':>8}")
    for name, row in rows.items():
        us = "-" if np.isnan(row[0, 0]) else f"{np.median(row[:, 0]):.0f}"
        mm, deg = (np.percentile(row[:, k], [50, 95]) for k in (1, 2))
        print(f"{name:<16}{us:>10}{mm[0]:>12.2f}{mm[1]:>8.2f}{deg[0]:>13.2f}{deg[1]:>8.2f}")

    print(f"\nclosed loop: scripted expert, {args.episodes} seeded episodes per task, no cameras\n")
    print(f"{'task':<12}{'solver':<16}{'success':>9}{'steps/s':>10}{'IK fails':>10}")
    for task in args.tasks:
        for name, (rate, speed, failures) in closed_loop(task, args, mink).items():
            print(f"{task:<12}{name:<16}{rate:>9.0%}{speed:>10.1f}{failures:>10}", flush=True)


if __name__ == "__main__":
    main()
