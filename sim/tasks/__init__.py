"""The task registries: the single-skill tasks (``TASKS``, what ``sim.list_tasks()`` and ``"all"`` name,
so every preset trains and evaluates on them) and the long-horizon tasks (``LONG_HORIZON``, several skills
under one instruction: ``sim.long_horizon_tasks()``). ``get_task`` finds a task in either.

Also the held-out instruction templates: each language task (one whose instruction picks the goal among
the scene's alternatives) can keep one template out of recording, to test a policy on a paraphrase it never
saw. The convention: a task's held-out template is its last ``instructions`` entry unless one is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.tasks.base import Task
from sim.tasks.button import PressButton
from sim.tasks.drawer import CloseDrawer, OpenDrawer
from sim.tasks.longhorizon import PutAllInBin, StackThree
from sim.tasks.pick import PickUp
from sim.tasks.place import PlaceInBin
from sim.tasks.stack import Stack
from sim.tasks.targets import PlaceOnTarget, PushToTarget

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        PickUp,
        PlaceInBin,
        Stack,
        PushToTarget,
        PlaceOnTarget,
        OpenDrawer,
        CloseDrawer,
        PressButton,
    )
}
LONG_HORIZON: dict[str, type[Task]] = {cls.name: cls for cls in (PutAllInBin, StackThree)}
ALL_TASKS: dict[str, type[Task]] = {**TASKS, **LONG_HORIZON}


def get_task(name: str) -> type[Task]:
    if name not in ALL_TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {sorted(ALL_TASKS)}")
    return ALL_TASKS[name]


def language_tasks() -> list[str]:
    """The tasks whose instruction picks the goal among the scene's alternatives (``Task.goal_fields``)."""
    return sorted(name for name, cls in TASKS.items() if cls.goal_fields)


def holdout_templates(spec: Any) -> dict[str, str]:
    """Each language task's held-out instruction template under ``spec``:

    - ``None`` or ``"none"``: none held out (``{}``);
    - ``"last"``: each language task's last template;
    - a mapping ``{task: template text, or its index in the task's instructions}``: those tasks' named
      templates, the last for the other language tasks.

    Anything else, a task without alternatives (the drawers) or an unknown template: ``ValueError``.
    """
    if spec is None or spec == "none":
        return {}
    held = {name: TASKS[name].instructions[-1] for name in language_tasks()}
    if spec == "last":
        return held
    if not isinstance(spec, Mapping):
        raise ValueError(f"holdout_templates must be none, last or a mapping task -> template, got {spec!r}")
    for name, template in spec.items():
        if name not in held:
            raise ValueError(
                f"holdout_templates names {name!r}, which is not a language task; language tasks (the "
                f"others have no alternative goals): {language_tasks()}"
            )
        held[name] = _template(name, template)
    return held


def _template(task: str, template: Any) -> str:
    """A template of ``task`` given by its text or its index in the task's instructions."""
    templates = TASKS[task].instructions
    if isinstance(template, int) and not isinstance(template, bool):
        if not -len(templates) <= template < len(templates):
            raise ValueError(f"{task} has {len(templates)} instruction templates, no index {template}")
        return templates[template]
    if template not in templates:
        raise ValueError(
            f"unknown {task} instruction template {template!r}; its templates: {list(templates)}"
        )
    return str(template)
