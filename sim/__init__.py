"""sim: headless MuJoCo tabletop tasks for language-conditioned manipulation, with scripted experts.

    import sim
    sim.list_tasks()                      # ['CloseDrawer', 'OpenDrawer', ...]
    sim.resolve_tasks("all")              # a config's tasks ("all", a name or names) -> the names
    sim.language_tasks()                  # the tasks whose instruction picks the goal among alternatives
    sim.long_horizon_tasks()              # ['PutAllInBin', 'StackThree']: several skills per instruction
    env = sim.make("PickUp", image_size=(128, 128))
    expert = sim.make_expert(env)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(expert.infer(obs)["actions"][0])

Tasks are also registered with gymnasium as ``vla/<TaskName>-v0``.
"""

import functools
from typing import Any

from sim import gl

gl.choose_backend()  # must precede the first import of mujoco, which reads MUJOCO_GL once

import gymnasium as gym  # noqa: E402

from sim.contract import ACTION_DIM, CAMERAS, STATE_DIM, STATE_NAMES  # noqa: E402
from sim.env import EnvConfig, TabletopEnv  # noqa: E402
from sim.experts import ScriptedExpert  # noqa: E402
from sim.scene import RenderConfig  # noqa: E402
from sim.tasks import ALL_TASKS, LONG_HORIZON, TASKS, holdout_templates, language_tasks  # noqa: E402

GYM_PREFIX = "vla/"

__all__ = [
    "ACTION_DIM",
    "CAMERAS",
    "STATE_DIM",
    "STATE_NAMES",
    "EnvConfig",
    "RenderConfig",
    "ScriptedExpert",
    "TabletopEnv",
    "goal_count",
    "gym_id",
    "holdout_templates",
    "language_tasks",
    "list_tasks",
    "long_horizon_tasks",
    "make",
    "make_expert",
    "resolve_tasks",
]


def list_tasks() -> list[str]:
    """The single-skill tasks: what ``"all"`` names."""
    return sorted(TASKS)


def long_horizon_tasks() -> list[str]:
    """The tasks whose instruction takes several skills (``sim.tasks.longhorizon``); not in ``"all"``."""
    return sorted(LONG_HORIZON)


def resolve_tasks(tasks: Any) -> list[str]:
    """``"all"`` (or ``["all"]``: the single-skill tasks), one task name or a list of names -> the task
    names, or ``ValueError``."""
    available = list_tasks()
    if tasks == "all" or (not isinstance(tasks, str) and list(tasks) == ["all"]):
        return available
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [name for name in names if name not in ALL_TASKS]
    if unknown or not names:
        raise ValueError(
            f"unknown tasks {unknown or names}; available tasks: {available}, long-horizon tasks: "
            f"{long_horizon_tasks()}"
        )
    return list(dict.fromkeys(names))  # drop repeats, keep order


def gym_id(task: str) -> str:
    return f"{GYM_PREFIX}{task}-v0"


def _task_name(task: str) -> str:
    name = task.removeprefix(GYM_PREFIX).removesuffix("-v0")
    if name not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; available tasks: {sorted(ALL_TASKS)}")
    return name


def make(task: str, **options) -> TabletopEnv:
    """Build a task's environment by name (``"PickUp"`` or ``"vla/PickUp-v0"``); options: ``EnvConfig`` fields."""
    return gym.make(gym_id(_task_name(task)), disable_env_checker=True, **options)


@functools.cache
def goal_count(task: str) -> int:
    """How many goals a scene of ``task`` offers its instruction (1 for the drawers): every scene of a task
    places the same objects, so one reset tells."""
    env = make(task, cameras=())
    env.reset(seed=0)
    count = len(env.unwrapped.task.goals())
    env.close()
    return count


def make_expert(env, noise: float = 0.0, seed: int | None = None) -> ScriptedExpert:
    """The scripted expert of ``env``'s task: ``reset()`` and ``infer(obs) -> {"actions": float32[1, 7]}``."""
    return ScriptedExpert(env, noise=noise, seed=seed)


for _name in ALL_TASKS:
    if gym_id(_name) not in gym.registry:
        gym.register(id=gym_id(_name), entry_point="sim.env:TabletopEnv", kwargs={"task": _name})
