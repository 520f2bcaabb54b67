"""The task registry: every task by name. ``sim.list_tasks()`` lists them."""

from __future__ import annotations

from sim.tasks.base import Task
from sim.tasks.button import PressButton
from sim.tasks.drawer import CloseDrawer, OpenDrawer
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


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {sorted(TASKS)}")
    return TASKS[name]
