"""Stack the {top} cube on the {bottom} cube: three cubes; the named one must rest, released, on the other."""

from __future__ import annotations

from itertools import permutations

import numpy as np

from sim import objects
from sim.tasks.base import PlanStep, Task, Thing, pick_and_place, pick_colors, sample_positions
from sim.world import World

_CUBES = ("cube_a", "cube_b", "cube_c")
_PAIRS = list(permutations(range(len(_CUBES)), 2))  # (top, bottom) indices: the goals, in a fixed order


def resting_on(world: World, top: str, bottom: str, gap: float = 2 * objects.CUBE_HALF) -> bool:
    """Whether ``top`` sits on ``bottom``: centred over it within a cube's half side, its centre ``gap``
    (the two half heights) above ``bottom``'s within 8 mm."""
    offset = world.body_pos(top) - world.body_pos(bottom)
    aligned = np.linalg.norm(offset[:2]) < objects.CUBE_HALF
    return bool(aligned and abs(offset[2] - gap) < 0.008)


class Stack(Task):
    name = "Stack"
    max_steps = 120
    instructions = (
        "stack the {top} cube on the {bottom} cube",
        "put the {top} cube on top of the {bottom} cube",
        "place the {top} cube onto the {bottom} cube",
        "pile the {top} cube on the {bottom} cube",
    )
    # Both colours, in their roles: the scene holds only cubes, so "cube" may go.
    unseen_wordings = (
        "set the {top} cube on the {bottom} cube",
        "the {top} cube goes on top of the {bottom} cube",
        "on the {bottom} cube, put the {top} cube",
        "the {top} cube, stack it on the {bottom} one",
        "put the {top} one on the {bottom} one",
        "{top} on {bottom}",
        "can you stack {top} on {bottom} for me",
    )
    goal_fields = ("top", "bottom")

    def objects_xml(self) -> str:
        return "".join(objects.cube(c) for c in _CUBES)

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        colors = pick_colors(rng, len(_CUBES))
        for cube, color, xy in zip(_CUBES, colors, sample_positions(rng, 3, 0.1), strict=True):
            world.set_free_pose(cube, [*xy, objects.CUBE_HALF], rng.uniform(-np.pi, np.pi))
            world.set_rgba(cube, objects.COLORS[color])
        top, bottom = rng.choice(len(_CUBES), size=2, replace=False)
        self.colors = colors
        self._aim(_PAIRS.index((int(top), int(bottom))))
        return {"top": colors[top], "bottom": colors[bottom]}

    def goals(self) -> list[dict[str, str]]:
        return [{"top": self.colors[top], "bottom": self.colors[bottom]} for top, bottom in _PAIRS]

    def _aim(self, index: int) -> None:
        top, bottom = _PAIRS[index]
        self.top, self.bottom = _CUBES[top], _CUBES[bottom]

    def things(self) -> list[Thing]:
        return [Thing(c, "cube", color) for c, color in zip(_CUBES, self.colors, strict=True)]

    def pick_body(self) -> str:
        return self.top

    def success(self, world: World) -> bool:
        return resting_on(world, self.top, self.bottom) and not world.touching(world.finger_geoms, self.top)

    def plan(self, world: World) -> list[PlanStep]:
        release_z = 3 * objects.CUBE_HALF + 0.006  # the held cube's centre just above the bottom cube
        return pick_and_place(
            world, self.top, objects.CUBE_HALF, lambda w: w.body_pos(self.bottom), release_z=release_z
        )
