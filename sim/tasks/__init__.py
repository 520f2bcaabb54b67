"""The task registry: every task by name. ``sim.list_tasks()`` lists them."""

from __future__ import annotations

from sim.tasks.base import Task
from sim.tasks.pick import PickUp

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (PickUp,)}


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {sorted(TASKS)}")
    return TASKS[name]
