"""Simulation throughput: our control step against the raw MuJoCo floor on the same model, and Meta-World.

For every task in ``sim.list_tasks()``, with both cameras at 128x128 (``--size``):

* ours:  ``env.step(action)`` (action check, Cartesian IK, ``mj_step(nstep=substeps)``, one render per camera,
  the observation), driven by the scripted expert; only ``env.step`` is timed, never the expert or a reset;
* floor: the same compiled model with a fresh ``MjData`` and a bare ``mujoco.Renderer``; per step exactly
  ``mj_step(model, data, nstep=substeps)`` plus ``update_scene`` + ``render`` per camera. It replays the
  controls and episode starts of our run, so both integrate the same motion and contacts;
* ratio: our time per step / the floor's (the goal is <= 1.25); "1 cam": the agentview camera only.

Each figure is the best of ``--repeats`` runs of ``--steps`` steps, after ``--warmup`` untimed steps.
``--metaworld`` (needs ``metaworld``) adds Meta-World v3's ``env.step`` + ``env.render()`` (it renders one
camera), as shipped and with shadows and multisampling off, beside ours with one camera.

    make bench-sim                                      # ours in .venv, then --metaworld in .venv-metaworld
    .venv/bin/python bench/sim_throughput.py --steps 200 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

import sim

METAWORLD_TASKS = ("reach-v3", "pick-place-v3", "drawer-open-v3", "button-press-topdown-v3")


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    gl = "?"
    try:
        from OpenGL import GL

        context = mujoco.GLContext(16, 16)
        context.make_current()
        gl = GL.glGetString(GL.GL_RENDERER).decode()
        context.free()
    except Exception:  # only for the header line
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()}, python {platform.python_version()}, "
        f"mujoco {mujoco.__version__}, MUJOCO_GL={os.environ['MUJOCO_GL']} ({gl})"
    )


def snapshot(data: mujoco.MjData) -> tuple:
    return data.time, data.qpos.copy(), data.qvel.copy(), data.act.copy(), data.qacc_warmstart.copy()


def run_ours(env, expert, steps: int, seed: int) -> tuple[float, list]:
    """Seconds spent in ``env.step`` over ``steps`` expert steps, and the trace the floor replays."""
    data = env.unwrapped.world.data
    elapsed, trace, episode = 0.0, [], 0
    obs, _ = env.reset(seed=seed)
    expert.reset()
    start = snapshot(data)
    for _ in range(steps):
        action = expert.infer(obs)["actions"][0]
        t0 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        trace.append((start, data.ctrl.copy()))
        start = None
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            expert.reset()
            start = snapshot(data)
    return elapsed, trace


def run_floor(env, data: mujoco.MjData, renderer: mujoco.Renderer, trace: list) -> float:
    """Seconds for bare ``mj_step`` + one render per camera on ``env``'s compiled model, replaying ``trace``."""
    model, config = env.unwrapped.model, env.unwrapped.config
    elapsed = 0.0
    for start, ctrl in trace:
        if start is not None:  # an episode start of our run (not timed)
            data.time, data.qpos[:], data.qvel[:], data.act[:], data.qacc_warmstart[:] = start
        data.ctrl[:] = ctrl
        t0 = time.perf_counter()
        mujoco.mj_step(model, data, nstep=config.substeps)
        for camera in config.cameras:
            renderer.update_scene(data, camera=camera)
            renderer.render()
        elapsed += time.perf_counter() - t0
    return elapsed


def bench_ours(task: str, cameras: tuple[str, ...], args) -> tuple[float, float]:
    """Best seconds of ours for ``args.steps`` steps, and of the floor replaying the same steps."""
    env = sim.make(task, image_size=(args.size, args.size), cameras=cameras)
    expert = sim.make_expert(env)
    model = env.unwrapped.model  # the floor's: the same compiled model, its own data and renderer
    data, renderer = mujoco.MjData(model), mujoco.Renderer(model, args.size, args.size)
    best_ours = best_floor = float("inf")
    for repeat in range(args.repeats + 1):  # the first run is the warm-up; ours and the floor interleave
        elapsed, trace = run_ours(env, expert, args.steps if repeat else args.warmup, args.seed)
        floor_elapsed = run_floor(env, data, renderer, trace)
        if repeat:
            best_ours, best_floor = min(best_ours, elapsed), min(best_floor, floor_elapsed)
    renderer.close()
    env.close()
    return best_ours, best_floor


def bench_metaworld(name: str, args, shadows_off: bool) -> tuple[float, float]:
    """Meta-World steps/s of ``env.step(random action)`` + ``env.render()``, and simulated seconds per step."""
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers Meta-World/MT1)

    env = gym.make(
        "Meta-World/MT1", env_name=name, seed=args.seed, render_mode="rgb_array", width=args.size,
        height=args.size, camera_name="corner", disable_env_checker=True,
    )  # fmt: skip
    model = env.unwrapped.model
    if shadows_off:  # read when the first render() creates the GL context
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
    rng = np.random.default_rng(args.seed)
    best = float("inf")
    for repeat in range(args.repeats + 1):  # the first run is the warm-up
        env.reset(seed=args.seed)
        elapsed = 0.0
        for _ in range(args.warmup if repeat == 0 else args.steps):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            env.render()
            elapsed += time.perf_counter() - t0
            if terminated or truncated:
                env.reset()
        if repeat:
            best = min(best, elapsed)
    env.close()
    return args.steps / best, env.unwrapped.frame_skip * model.opt.timestep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed control steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before timing")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best is reported")
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=None, help="default: every task in sim.list_tasks()")
    parser.add_argument("--metaworld", action="store_true", help="also time Meta-World v3 (needs metaworld)")
    args = parser.parse_args()

    columns = ("ours 2 cam", "floor 2 cam", "ratio", "ours 1 cam", "ratio 1 cam")
    print(f"machine: {machine()}")
    print(f"{args.steps} steps, best of {args.repeats}, {args.size}x{args.size} images: steps/s, ratios\n")
    print(f"{'task':<16}" + "".join(f"{c:>13}" for c in columns))
    rows = []
    for task in args.tasks or sim.list_tasks():
        ours, floor = bench_ours(task, sim.CAMERAS, args)
        ours1, floor1 = bench_ours(task, sim.CAMERAS[:1], args)
        rows.append((args.steps / ours, args.steps / floor, ours / floor, args.steps / ours1, ours1 / floor1))
        print(f"{task:<16}" + "".join(f"{v:>13.2f}" for v in rows[-1]), flush=True)
    mean = np.mean(rows, axis=0)
    print(f"{'mean':<16}" + "".join(f"{v:>13.2f}" for v in mean))
    print(f"goal: mean ratio <= 1.25, {'met' if mean[2] <= 1.25 else 'NOT met'}")
    if not args.metaworld:
        return

    config = sim.EnvConfig()
    sim_dt = config.substeps * config.physics_dt
    print("\none camera per step, steps/s (sim s/step: simulated seconds per control step)\n")
    print(f"{'env (camera)':<44}{'as shipped':>12}{'no shadow/MSAA':>16}{'sim s/step':>12}")
    print(f"{'vla-stack, mean over tasks (agentview)':<44}{mean[3]:>12.1f}{'':>16}{sim_dt:>12.4f}")
    for name in METAWORLD_TASKS:
        shipped, dt = bench_metaworld(name, args, shadows_off=False)
        fast, _ = bench_metaworld(name, args, shadows_off=True)
        print(f"{'Meta-World ' + name + ' (corner)':<44}{shipped:>12.1f}{fast:>16.1f}{dt:>12.4f}", flush=True)
    print(
        "vla-stack ships with shadows and multisampling off; Meta-World ships with both on. 'no shadow/MSAA':\n"
        "Meta-World with vis.quality shadowsize=0, offsamples=0 (its reflective materials left as they are)."
    )


if __name__ == "__main__":
    main()
