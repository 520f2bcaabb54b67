"""The oracle decomposition: a scripted function from a task's goal and the scene to the skills left to do.

It is the baseline that separates planning errors from execution errors: a planner's choice is right when
it is one of ``next_options``. It reads the goal from the task (``task.goal`` and the bodies it names), so
it is the same for every wording of the instruction. A state it has no way on from (the wrong object held,
a distractor in the bin) has no remaining skills and no options: every choice there counts as wrong.
"""

from __future__ import annotations

from sim.skills.library import MoveDrawer, PickUp, Press, Push, PutInBin, PutOn, Skill
from sim.skills.scene import MOVABLE, SceneState
from sim.tasks.base import Task


def remaining(task: Task, state: SceneState) -> list[Skill]:
    """The skills left to do, in the canonical order; [] when the goal holds (or nothing leads there)."""
    if task.name not in _DECOMPOSE:
        raise ValueError(f"no oracle decomposition for task {task.name!r}; tasks: {sorted(_DECOMPOSE)}")
    return _DECOMPOSE[task.name](task, state)


def next_options(task: Task, state: SceneState) -> list[Skill]:
    """Every skill that is a right next step: the first remaining one, or any pick of an object still to
    be binned (PutAllInBin's order is free)."""
    steps = remaining(task, state)
    if task.name == "PutAllInBin" and steps and isinstance(steps[0], PickUp):
        return [s for s in steps if isinstance(s, PickUp)]
    return steps[:1]


def _pick_then(state: SceneState, body: str, place: Skill) -> list[Skill]:
    """Pick ``body`` (unless it is held already), then ``place``; [] (stuck) while something else is held."""
    if state.held == body:
        return [place]
    if state.held is not None:
        return []
    return [_pick(state, body), place]


def _pick(state: SceneState, body: str) -> PickUp:
    return PickUp(state.thing(body), _movable(state))


def _bin(state: SceneState):
    return next(t for t in state.things if t.kind == "bin")


def _movable(state: SceneState) -> tuple[str, ...]:
    return tuple(t.body for t in state.things if t.kind in MOVABLE)


def _pick_up(task, state):
    return [_pick(state, task.target)] if state.held is None else []


def _place_in_bin(task, state):
    if task.target in state.in_bin:
        return []
    return _pick_then(state, task.target, PutInBin(state.thing(task.target), _bin(state), _movable(state)))


def _stack(task, state):
    if (task.top, task.bottom) in state.on:
        return []
    return _pick_then(state, task.top, PutOn(state.thing(task.top), state.thing(task.bottom)))


def _place_on_target(task, state):
    if (task.cube, task.pad) in state.on:
        return []
    return _pick_then(state, task.cube, PutOn(state.thing(task.cube), state.thing(task.pad)))


def _push(task, state):
    if (task.cube, task.pad) in state.on:
        return []
    return [Push(state.thing(task.cube), state.thing(task.pad))] if state.held is None else []


def _press(task, state):
    return [Press(state.thing(task.target))] if state.held is None else []


def _drawer(opening: bool):
    def decompose(task, state):
        if state.drawer_open is opening:
            return []
        return [MoveDrawer(task, opening)] if state.held is None else []

    return decompose


def _put_all_in_bin(task, state):
    wanted = task.targets()
    if any(b in state.in_bin for b in _movable(state) if b not in wanted):
        return []
    if state.held is not None and state.held not in wanted:
        return []
    todo = [b for b in wanted if b not in state.in_bin]
    if state.held in todo:  # finish the carry first
        todo.remove(state.held)
        todo.insert(0, state.held)
    steps: list[Skill] = []
    for body in todo:
        place = PutInBin(state.thing(body), _bin(state), _movable(state))
        steps += [place] if body == state.held else [_pick(state, body), place]
    return steps


def _stack_three(task, state):
    bottom, middle, top = task.bottom, task.middle, task.top
    if (middle, bottom) in state.on and (top, middle) in state.on:
        return []
    if any(pair[1] == top for pair in state.on) or state.support_of(bottom) is not None:
        return []
    if (middle, bottom) in state.on:
        return _pick_then(state, top, PutOn(state.thing(top), state.thing(middle)))
    if not (state.clear(bottom) and state.clear(middle)):
        return []
    first = _pick_then(state, middle, PutOn(state.thing(middle), state.thing(bottom)))
    if not first:
        return []
    return first + [_pick(state, top), PutOn(state.thing(top), state.thing(middle))]


_DECOMPOSE = {
    "PickUp": _pick_up,
    "PlaceInBin": _place_in_bin,
    "Stack": _stack,
    "PlaceOnTarget": _place_on_target,
    "PushToTarget": _push,
    "PressButton": _press,
    "OpenDrawer": _drawer(True),
    "CloseDrawer": _drawer(False),
    "PutAllInBin": _put_all_in_bin,
    "StackThree": _stack_three,
}
