"""What a planner is told of a scene: a symbolic state read from the simulator, and its description in words.

``observe`` reads the state from privileged simulator state (object poses and contacts), as Inner
Monologue's scene descriptor and SayCan's affordances need it; the skills' expected effects
(``Skill.effect``) predict the next state without the simulator, for a plan run open-loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.tasks.base import Task, Thing
from sim.tasks.moves import HALF_HEIGHT
from sim.tasks.place import in_bin
from sim.tasks.stack import resting_on
from sim.tasks.targets import on_target
from sim.world import World

MOVABLE = ("cube", "cylinder", "block")  # kinds the gripper picks up


@dataclass(frozen=True)
class SceneState:
    """The scene as the planner sees it. Bodies are MuJoCo body names (``Thing.body``)."""

    things: tuple[Thing, ...]
    held: str | None = None  # the body between the fingers
    in_bin: frozenset[str] = frozenset()
    on: tuple[tuple[str, str], ...] = ()  # (body, support): stacked on another object, or on a target pad
    drawer_open: bool | None = None  # None: no drawer in the scene

    def thing(self, body: str) -> Thing:
        return next(t for t in self.things if t.body == body)

    def of_kind(self, *kinds: str) -> list[Thing]:
        return [t for t in self.things if t.kind in kinds]

    def support_of(self, body: str) -> str | None:
        return next((support for top, support in self.on if top == body), None)

    def clear(self, body: str) -> bool:
        """Nothing stands on ``body``."""
        return all(support != body for _, support in self.on)

    def with_held(self, body: str | None) -> SceneState:
        """The state once ``body`` is picked up (or, for None, once the held body is let go)."""
        on = tuple(pair for pair in self.on if pair[0] != body)
        return replace(self, held=body, in_bin=self.in_bin - {body}, on=on)


def observe(task: Task, world: World) -> SceneState:
    """The symbolic state of ``task``'s scene, from the simulator (privileged)."""
    things = tuple(task.things())
    movable = [t for t in things if t.kind in MOVABLE]
    held = next((t.body for t in movable if world.grasped(t.body)), None)
    loose = [t for t in movable if t.body != held]
    bins = [t.body for t in things if t.kind == "bin"]
    inside = frozenset(t.body for t in loose for b in bins if in_bin(world, t.body, b))
    on = [
        (top.body, support.body)
        for top in loose
        for support in movable
        if support.body != top.body
        and resting_on(world, top.body, support.body, HALF_HEIGHT[top.kind] + HALF_HEIGHT[support.kind])
    ]
    pads = [t.body for t in things if t.kind == "target"]
    on += [
        (cube.body, pad)
        for cube in loose
        if cube.kind == "cube"
        for pad in pads
        if on_target(world, cube.body, pad)
    ]
    drawer = None
    if any(t.kind == "drawer" for t in things):
        drawer = bool(task.is_open(world))
    return SceneState(things, held, inside, tuple(on), drawer)


def describe(state: SceneState) -> str:
    """A short line of words on what has changed from a tidy table: what the gripper holds, what is in the
    bin, what stands on what, the drawer. E.g. ``"holding: the red cube. in the bin: the blue cylinder.
    the green cube is on the yellow cube."`` The objects lying loose are left out: a planner knows them
    from its skills, and naming every colour at every step drowns the ones that matter."""
    name = lambda body: f"the {state.thing(body).name}"  # noqa: E731
    parts = [f"holding: {name(state.held)}." if state.held else "holding: nothing."]
    if any(t.kind == "bin" for t in state.things):
        inside = [name(t.body) for t in state.things if t.body in state.in_bin]
        parts.append(f"in the bin: {', '.join(inside) if inside else 'nothing'}.")
    parts += [f"{name(top)} is on {name(support)}." for top, support in state.on]
    if state.drawer_open is not None:
        parts.append(f"the drawer is {'open' if state.drawer_open else 'closed'}.")
    return " ".join(parts)
