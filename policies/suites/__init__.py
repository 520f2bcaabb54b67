"""The simulators ``vla-record`` records from and ``vla-eval`` evaluates on: our tabletop tasks (``sim``) and
Meta-World (``sim.metaworld``).

A recording draws from one suite: the two have different robots, state and action sizes and cameras, so their
episodes cannot share a dataset's features. Tasks are named as each suite's ``make`` takes them (``PickUp``,
``metaworld/reach-v3``), and so they appear in the dataset's ``vla/sim_task`` column. Resolving Meta-World ids
and checking a config never import Meta-World (it lives in its own venv): only building an env does, and
``check_installed`` tells early whether that will work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sim
from sim import contract
from sim import metaworld as mw


@dataclass(frozen=True)
class Suite:
    """What a dataset's info.json says of the robot a suite's episodes come from."""

    name: str
    robot_type: str
    fps: int
    cameras: tuple[str, ...]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]


SIM = Suite(
    "sim",
    "vla_panda_sim",
    sim.EnvConfig().control_hz,
    sim.CAMERAS,
    contract.STATE_NAMES,
    contract.ACTION_NAMES,
)
METAWORLD = Suite(
    "metaworld", "metaworld_sawyer", mw.CONTROL_HZ, (mw.CAMERA,), mw.STATE_NAMES, mw.ACTION_NAMES
)


def is_metaworld(task: Any) -> bool:
    return isinstance(task, str) and task.startswith(mw.ID_PREFIX)


def suite_of(tasks: list[str]) -> Suite:
    """The suite of resolved task names (all of one suite, as ``resolve`` returns them)."""
    return METAWORLD if is_metaworld(tasks[0]) else SIM


def resolve(tasks: Any) -> list[str]:
    """A config's tasks -> task names of one suite: sim's (``"all"``, names) or Meta-World ids (tasks or
    groups, ``metaworld/mt10``), each group spelled out as task ids; ``ValueError`` naming the valid choices."""
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    metaworld = [name for name in names if is_metaworld(name)]
    if not metaworld:
        try:
            return sim.resolve_tasks(tasks)
        except ValueError as error:
            raise ValueError(
                f"{error}; Meta-World ids: metaworld/<task> or a group ({mw.ID_PREFIX}mt10, ...)"
            ) from None
    others = [name for name in names if not is_metaworld(name)]
    if others:
        raise ValueError(
            f"cannot record Meta-World {metaworld} and our tasks {others} into one dataset: their robots, state "
            "and action sizes and cameras differ; record each into its own out= directory"
        )
    ids = [mw.ID_PREFIX + task for name in names for task in mw.resolve(name)]
    return list(dict.fromkeys(ids))  # drop repeats (groups overlap), keep order


def checked_cameras(tasks: list[str], config) -> list[str]:
    """The cameras to record ``tasks`` with; ``ValueError`` for options their suite cannot honour."""
    if suite_of(tasks) is SIM:
        sim.EnvConfig(image_size=tuple(config.image_size), cameras=tuple(config.cameras))  # validates both
        sim.holdout_templates(config.holdout_templates)  # valid, or an error naming the templates
        return list(config.cameras)
    sim.EnvConfig(image_size=tuple(config.image_size), cameras=())  # validates the size
    check_one_goal(config.goals_per_scene, config.holdout_templates)
    return metaworld_cameras(config.cameras)


def check_one_goal(goals_per_scene: int, holdout_templates: Any) -> None:
    """``ValueError`` unless the counterfactual options are off, as Meta-World needs (one instruction per task)."""
    if goals_per_scene != 1:
        raise ValueError(
            f"goals_per_scene must be 1 for Meta-World, got {goals_per_scene}: each task has one "
            "instruction and one goal, so a scene has no other goal to name"
        )
    if holdout_templates not in (None, "none"):
        raise ValueError(
            f"holdout_templates must be null for Meta-World, got {holdout_templates!r}: each task has "
            "one instruction, so there is no paraphrase to hold out"
        )


def metaworld_cameras(cameras: Any, option: str = "cameras") -> list[str]:
    """``[corner2]`` for ``cameras`` (``option`` names them in the error): Meta-World's one camera, or our
    default ``[agentview, wrist]``, taken to mean "the default"; ``ValueError`` for any other."""
    if list(cameras) in (list(sim.CAMERAS), [mw.CAMERA]):
        return [mw.CAMERA]
    raise ValueError(f"Meta-World has one camera: {option} must be [{mw.CAMERA}], got {list(cameras)}")


def check_installed(tasks: list[str]) -> None:
    """``ImportError`` saying how to get Meta-World when ``tasks`` need it and it is missing here."""
    if suite_of(tasks) is METAWORLD:
        mw.check_installed()


def make_env(task: str, image_size: tuple[int, int], cameras: tuple[str, ...], held: str | None):
    """``task``'s environment; ``held``: an instruction template never drawn (sim's language tasks)."""
    if is_metaworld(task):
        return mw.make(task, image_size=image_size)
    return sim.make(task, image_size=image_size, cameras=cameras, exclude_templates=(held,) if held else ())


def make_expert(task: str, env, noise: float, seed):
    """``task``'s scripted expert; with ``noise``, it also gives its intended actions (``LABEL_ACTIONS``)."""
    if is_metaworld(task):
        return mw.metaworld_expert(env, noise=noise, seed=seed)
    return sim.make_expert(env, noise=noise, seed=seed)
