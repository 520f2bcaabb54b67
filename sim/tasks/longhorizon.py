"""Long-horizon tasks: several picks and places under one instruction, which no single-skill task covers.

- ``PutAllInBin``: five objects (two cubes, two cylinders, a block) and a bin; every object of the named
  colour (one to three of them) must end up in the bin, released, and no other object. No two objects of
  one kind share a colour, so "the red cube" always names one object.
- ``StackThree``: four cubes of distinct colours; three named ones must stand in a tower in the named order
  (bottom, middle, top), released.

Their experts are the skills' reference executors run back to back (``sim.tasks.moves``): each pick aims at
where its object is when the pick starts. Neither task is in ``sim.list_tasks()`` (the single-skill tasks
every preset trains and evaluates on): they are listed by ``sim.long_horizon_tasks()``.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from sim import objects
from sim.tasks.base import PlanStep, Task, Thing, pick_colors, sample_positions
from sim.tasks.moves import HALF_HEIGHT, RELEASE_CLEARANCE, pick_steps, place_steps
from sim.tasks.place import BIN_INNER, BIN_WALL, in_bin
from sim.tasks.stack import resting_on
from sim.world import World

_OBJECTS = {
    "cube_a": "cube",
    "cube_b": "cube",
    "cylinder_a": "cylinder",
    "cylinder_b": "cylinder",
    "block": "block",
}
_KINDS = ("cube", "cylinder", "block")
_BUILD = {"cube": objects.cube, "cylinder": objects.cylinder, "block": objects.block}
_BIN_CLEARANCE = 0.16  # m from the bin's centre to an object's: its corner is 0.11 m out
BIN_RELEASE_Z = BIN_WALL + 0.04  # m, the held object's centre when it is let go over the bin
# Where objects are let go in the bin: its four quadrants' centres (offsets from the bin's centre), so up to
# three objects lie side by side, not on top of each other.
BIN_SPOTS = np.array([[sx, sy] for sx in (-1, 1) for sy in (-1, 1)]) * BIN_INNER / 2


def bin_spot(world: World, others: list[str], bin_body: str = "bin") -> np.ndarray:
    """The bin quadrant (xy) farthest from every one of ``others`` already in the bin."""
    centre = world.body_pos(bin_body)[:2]
    inside = [world.body_pos(b)[:2] for b in others if in_bin(world, b, bin_body)]
    spots = centre + BIN_SPOTS
    if not inside:
        return spots[0]
    clearance = [min(np.linalg.norm(spot - p) for p in inside) for spot in spots]
    return spots[int(np.argmax(clearance))]


def _colors(rng: np.random.Generator) -> tuple[list[str], str]:
    """Colours of ``_OBJECTS`` (in order) and the named one: 1-3 objects of the named colour, each of
    another kind; the others in at least two other colours; no colour twice on one kind."""
    target, *others = pick_colors(rng, 6)
    kinds = rng.choice(len(_KINDS), size=int(rng.integers(1, 4)), replace=False)
    matching = {str(rng.choice([b for b, k in _OBJECTS.items() if k == _KINDS[i]])) for i in kinds}
    rest = [b for b in _OBJECTS if b not in matching]
    while True:  # a few draws at most: five colours over at most four objects
        drawn = dict(zip(rest, (str(c) for c in rng.choice(others, len(rest))), strict=True))
        pairs = {(color, _OBJECTS[b]) for b, color in drawn.items()}
        if len(set(drawn.values())) >= 2 and len(pairs) == len(rest):
            return [target if b in matching else drawn[b] for b in _OBJECTS], target


def put_in_bin_steps(body: str, kind: str, others: list[str]) -> list[PlanStep]:
    spot = lambda w: bin_spot(w, others)  # noqa: E731
    return pick_steps(body, kind, others) + place_steps(spot, lambda w: BIN_RELEASE_Z)


def stack_on_steps(body: str, support: str, others: list[str]) -> list[PlanStep]:
    """Pick the cube ``body`` and set it on ``support`` (whatever ``support`` stands on by then)."""
    release_z = lambda w: w.body_pos(support)[2] + 2 * objects.CUBE_HALF + RELEASE_CLEARANCE  # noqa: E731
    return pick_steps(body, "cube", others) + place_steps(lambda w: w.body_pos(support), release_z)


class PutAllInBin(Task):
    name = "PutAllInBin"
    max_steps = 250  # three picks and places take up to ~100 steps; the rest is room to recover from drops
    instructions = (
        "put all the {color} objects in the bin",
        "put every {color} thing into the bin",
        "move each {color} object to the bin",
        "clear all {color} items into the bin",
    )
    goal_fields = ("color",)

    def objects_xml(self) -> str:
        return "".join(_BUILD[k](b) for b, k in _OBJECTS.items()) + objects.bin_("bin", BIN_INNER, BIN_WALL)

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        # The bin on one side of the table, the objects on the rest: five objects need the room.
        side = float(rng.choice([-1.0, 1.0]))
        bin_xy = rng.uniform([0.44, 0.14], [0.56, 0.2]) * [1, side]
        low, high = (np.array([0.36, -0.24]), np.array([0.64, 0.04])) * np.array([1, side])
        low, high = np.minimum(low, high), np.maximum(low, high)
        world.set_body_pos("bin", [*bin_xy, 0.0])
        # Clear of the bin's corners by more than the open fingers reach, so no grasp lands on a wall.
        avoid = [(np.array([*bin_xy, 0.0]), _BIN_CLEARANCE)]
        bodies = list(_OBJECTS)
        self.colors, self.color = _colors(rng)
        for body, color, xy in zip(
            bodies, self.colors, sample_positions(rng, 5, 0.09, low, high, avoid), strict=True
        ):
            world.set_free_pose(body, [*xy, HALF_HEIGHT[_OBJECTS[body]]], rng.uniform(-np.pi, np.pi))
            world.set_rgba(body, objects.COLORS[color])
        return {"color": self.color}

    def goals(self) -> list[dict[str, str]]:
        return [{"color": color} for color in dict.fromkeys(self.colors)]  # in order of first appearance

    def _aim(self, index: int) -> None:
        self.color = self.goals()[index]["color"]

    def things(self) -> list[Thing]:
        movable = [Thing(b, k, c) for (b, k), c in zip(_OBJECTS.items(), self.colors, strict=True)]
        return [*movable, Thing("bin", "bin")]

    def targets(self) -> list[str]:
        """The bodies of the named colour, in body order."""
        return [b for b, c in zip(_OBJECTS, self.colors, strict=True) if c == self.color]

    def pick_body(self) -> str:
        return self.targets()[0]

    def success(self, world: World) -> bool:
        for body in _OBJECTS:
            wanted = body in self.targets()
            if in_bin(world, body) != wanted or (wanted and world.touching(world.finger_geoms, body)):
                return False
        return True

    def plan(self, world: World) -> list[PlanStep]:
        others = list(_OBJECTS)
        return [step for body in self.targets() for step in put_in_bin_steps(body, _OBJECTS[body], others)]


_CUBES = ("cube_a", "cube_b", "cube_c", "cube_d")
_ORDERS = list(permutations(range(len(_CUBES)), 3))  # (bottom, middle, top) indices: the goals, in order


class StackThree(Task):
    name = "StackThree"
    max_steps = 200  # two picks and places take up to ~70 steps; the rest is room to recover from drops
    instructions = (
        "stack the {middle} cube on the {bottom} cube and the {top} cube on the {middle} cube",
        "put the {middle} cube on the {bottom} cube, then the {top} cube on top of it",
        "build a tower with the {bottom} cube at the bottom, the {middle} cube in the middle and the {top} cube on top",
        "make a stack of the {bottom}, {middle} and {top} cubes, from the bottom up",
    )
    goal_fields = ("bottom", "middle", "top")

    def objects_xml(self) -> str:
        return "".join(objects.cube(c) for c in _CUBES)

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        colors = pick_colors(rng, len(_CUBES))
        # 12 cm apart: the arm reaching low for one cube keeps clear of a two-cube stack beside it.
        for cube, color, xy in zip(_CUBES, colors, sample_positions(rng, len(_CUBES), 0.12), strict=True):
            world.set_free_pose(cube, [*xy, objects.CUBE_HALF], rng.uniform(-np.pi, np.pi))
            world.set_rgba(cube, objects.COLORS[color])
        self.colors = colors
        order = tuple(int(i) for i in rng.choice(len(_CUBES), size=3, replace=False))
        self._aim(_ORDERS.index(order))
        return dict(zip(self.goal_fields, (colors[i] for i in order), strict=True))

    def goals(self) -> list[dict[str, str]]:
        return [
            dict(zip(self.goal_fields, (self.colors[i] for i in order), strict=True)) for order in _ORDERS
        ]

    def _aim(self, index: int) -> None:
        self.bottom, self.middle, self.top = (_CUBES[i] for i in _ORDERS[index])

    def things(self) -> list[Thing]:
        return [Thing(c, "cube", color) for c, color in zip(_CUBES, self.colors, strict=True)]

    def pick_body(self) -> str:
        return self.middle

    def success(self, world: World) -> bool:
        tower = resting_on(world, self.middle, self.bottom) and resting_on(world, self.top, self.middle)
        return tower and not world.touching(world.finger_geoms, self.top)

    def plan(self, world: World) -> list[PlanStep]:
        cubes = list(_CUBES)
        return stack_on_steps(self.middle, self.bottom, cubes) + stack_on_steps(self.top, self.middle, cubes)
