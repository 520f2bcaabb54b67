"""The skills: what the robot can be asked to do in one step, each described in words.

A skill is one short behaviour on named things (``"pick up the red cube"``), with

- ``plan(world)``: its reference executor's waypoints (the scripted expert runs them: ``executor``);
- ``done(world)``: its termination signal, a success predicate on simulator state, checked every control
  step after ``begin(world)`` marked the start;
- ``feasible(state)``: whether it can be done in the scene (a privileged affordance, 0 or 1);
- ``effect(state)``: the state it is expected to leave (to plan ahead without looking: open loop);
- ``max_steps``: its step limit; a skill that has not terminated by then is cut and counts as failed.

``skill_library(task)`` lists every skill the scene of ``task`` allows, in a fixed order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar

from sim.experts import ScriptedExpert
from sim.skills.scene import MOVABLE, SceneState
from sim.tasks.base import PlanStep, Task, Thing
from sim.tasks.button import press_steps, pressed
from sim.tasks.longhorizon import BIN_RELEASE_Z, bin_spot
from sim.tasks.moves import HALF_HEIGHT, RELEASE_CLEARANCE, RETREAT, pick_steps, place_steps
from sim.tasks.place import in_bin
from sim.tasks.stack import resting_on
from sim.tasks.targets import on_target, push_steps
from sim.world import World

LIFTED = 0.06  # m above where it started: a picked object counts as lifted
CLEAR = RETREAT / 2  # m the gripper rises after letting go before a place counts as done


class Skill(ABC):
    max_steps: ClassVar[int]

    @property
    @abstractmethod
    def text(self) -> str:
        """The skill in words, as a planner scores it and a sub-instruction labels frames."""

    @abstractmethod
    def plan(self, world: World) -> list[PlanStep]: ...

    def begin(self, world: World) -> None:  # noqa: B027  (most skills need nothing remembered)
        """Called once as the skill starts: remember what ``done`` compares against."""

    @abstractmethod
    def done(self, world: World) -> bool: ...

    @abstractmethod
    def feasible(self, state: SceneState) -> bool: ...

    def effect(self, state: SceneState) -> SceneState:
        return state

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.text}>"


@dataclass(repr=False)
class PickUp(Skill):
    thing: Thing
    neighbours: tuple[str, ...] = ()  # bodies the hand keeps its long side away from while grasping
    max_steps: ClassVar[int] = 60
    _start_z: float = field(default=0.0, init=False)

    @property
    def text(self) -> str:
        return f"pick up the {self.thing.name}"

    def plan(self, world: World) -> list[PlanStep]:
        return pick_steps(self.thing.body, self.thing.kind, self.neighbours)

    def begin(self, world: World) -> None:
        self._start_z = float(world.body_pos(self.thing.body)[2])

    def done(self, world: World) -> bool:
        lifted = world.body_pos(self.thing.body)[2] > self._start_z + LIFTED
        return bool(lifted and world.grasped(self.thing.body))

    def feasible(self, state: SceneState) -> bool:
        # Not from inside the bin: the fingers would meet its walls.
        body = self.thing.body
        return state.held is None and state.clear(body) and body not in state.in_bin

    def effect(self, state: SceneState) -> SceneState:
        return state.with_held(self.thing.body)


class _Place(Skill):
    """Carry the held thing somewhere, let go, rise: done once it rests there, released, the gripper clear."""

    thing: Thing
    max_steps: ClassVar[int] = 50

    @abstractmethod
    def placed(self, world: World) -> bool: ...

    @abstractmethod
    def release_z(self, world: World) -> float: ...

    def begin(self, world: World) -> None:
        self._clear_z = float(self.release_z(world)) + CLEAR

    def done(self, world: World) -> bool:
        released = not world.touching(world.finger_geoms, self.thing.body)
        return self.placed(world) and released and world.tcp_pos[2] > self._clear_z


@dataclass(repr=False)
class PutInBin(_Place):
    thing: Thing
    bin: Thing
    others: tuple[str, ...]  # every movable body: the bin spot keeps clear of those already inside

    @property
    def text(self) -> str:
        return f"put the {self.thing.name} in the {self.bin.name}"

    def release_z(self, world: World) -> float:
        return BIN_RELEASE_Z

    def plan(self, world: World) -> list[PlanStep]:
        return place_steps(lambda w: bin_spot(w, list(self.others), self.bin.body), self.release_z)

    def placed(self, world: World) -> bool:
        return in_bin(world, self.thing.body, self.bin.body)

    def feasible(self, state: SceneState) -> bool:
        return state.held == self.thing.body

    def effect(self, state: SceneState) -> SceneState:
        after = state.with_held(None)
        return replace(after, in_bin=after.in_bin | {self.thing.body})


@dataclass(repr=False)
class PutOn(_Place):
    """On another object (stacking) or on a target pad."""

    thing: Thing
    support: Thing

    @property
    def text(self) -> str:
        return f"put the {self.thing.name} on the {self.support.name}"

    def release_z(self, world: World) -> float:
        if self.support.kind == "target":
            return HALF_HEIGHT[self.thing.kind] + 0.01
        top = world.body_pos(self.support.body)[2] + HALF_HEIGHT[self.support.kind]
        return top + HALF_HEIGHT[self.thing.kind] + RELEASE_CLEARANCE

    def plan(self, world: World) -> list[PlanStep]:
        return place_steps(lambda w: w.body_pos(self.support.body), self.release_z)

    def placed(self, world: World) -> bool:
        if self.support.kind == "target":
            return on_target(world, self.thing.body, self.support.body)
        gap = HALF_HEIGHT[self.thing.kind] + HALF_HEIGHT[self.support.kind]
        return resting_on(world, self.thing.body, self.support.body, gap)

    def feasible(self, state: SceneState) -> bool:
        support = self.support.body
        free = state.clear(support) and support not in state.in_bin
        return state.held == self.thing.body and free

    def effect(self, state: SceneState) -> SceneState:
        after = state.with_held(None)
        return replace(after, on=(*after.on, (self.thing.body, self.support.body)))


@dataclass(repr=False)
class Push(Skill):
    cube: Thing
    target: Thing
    max_steps: ClassVar[int] = 120

    @property
    def text(self) -> str:
        return f"push the {self.cube.name} to the {self.target.name}"

    def plan(self, world: World) -> list[PlanStep]:
        return push_steps(self.cube.body, self.target.body, self.max_steps)

    def done(self, world: World) -> bool:
        return on_target(world, self.cube.body, self.target.body)

    def feasible(self, state: SceneState) -> bool:
        return state.held is None and state.support_of(self.cube.body) is None and state.clear(self.cube.body)

    def effect(self, state: SceneState) -> SceneState:
        return replace(state, on=(*state.on, (self.cube.body, self.target.body)))


@dataclass(repr=False)
class Press(Skill):
    button: Thing
    max_steps: ClassVar[int] = 60
    _pressed: bool = field(default=False, init=False)

    @property
    def text(self) -> str:
        return f"press the {self.button.name}"

    def plan(self, world: World) -> list[PlanStep]:
        return press_steps(world, self.button.body)

    def begin(self, world: World) -> None:
        self._pressed = False

    def done(self, world: World) -> bool:
        # The button springs back, so a press that happened stays done.
        self._pressed = self._pressed or pressed(world, self.button.body)
        return self._pressed

    def feasible(self, state: SceneState) -> bool:
        return state.held is None


@dataclass(repr=False)
class MoveDrawer(Skill):
    """Open or close the drawer (``task``: the drawer scene, which knows where its cabinet stands)."""

    task: Task
    opening: bool
    max_steps: ClassVar[int] = 100

    @property
    def text(self) -> str:
        return f"{'open' if self.opening else 'close'} the drawer"

    def plan(self, world: World) -> list[PlanStep]:
        return self.task.open_stroke(world) if self.opening else self.task.close_stroke(world)

    def done(self, world: World) -> bool:
        return self.task.is_open(world) if self.opening else self.task.is_closed(world)

    def feasible(self, state: SceneState) -> bool:
        return state.held is None and state.drawer_open is (not self.opening)

    def effect(self, state: SceneState) -> SceneState:
        return replace(state, drawer_open=self.opening)


def skill_library(task: Task) -> list[Skill]:
    """Every skill ``task``'s scene allows (valid after a reset), in a fixed order: picks, places in the
    bin, places on objects and targets, pushes, presses, the drawer."""
    things = task.things()
    movable = [t for t in things if t.kind in MOVABLE]
    bins = [t for t in things if t.kind == "bin"]
    cubes = [t for t in movable if t.kind == "cube"]
    targets = [t for t in things if t.kind == "target"]
    everything = tuple(t.body for t in movable)
    skills: list[Skill] = [PickUp(t, everything) for t in movable]
    skills += [PutInBin(t, b, everything) for b in bins for t in movable]
    skills += [PutOn(t, s) for t in movable for s in cubes + (targets if t.kind == "cube" else []) if s != t]
    skills += [Push(c, p) for c in cubes for p in targets]
    skills += [Press(b) for b in things if b.kind == "button"]
    if any(t.kind == "drawer" for t in things):
        skills += [MoveDrawer(task, True), MoveDrawer(task, False)]
    texts = [skill.text for skill in skills]
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise ValueError(
            f"{task.name}'s scene names two things alike, so its skills {repeated} are ambiguous"
        )
    return skills


def executor(env, skill: Skill, noise: float = 0.0, seed=None) -> ScriptedExpert:
    """The skill's reference executor on ``env``: the scripted expert following the skill's plan."""
    return ScriptedExpert(env, noise=noise, seed=seed, plan=skill.plan)
