"""Put the {color} cube in the bin: three cubes and a bin; the named cube must end up inside it, released."""

from __future__ import annotations

import numpy as np

from sim import objects
from sim.tasks.base import PlanStep, Task, Thing, pick_and_place, pick_colors, sample_positions
from sim.world import World

_CUBES = ("cube_a", "cube_b", "cube_c")
BIN_INNER = 0.07  # m, half width of the bin's inside
BIN_WALL = 0.05  # m


def in_bin(world: World, body: str, bin_body: str = "bin") -> bool:
    """Whether ``body``'s centre is inside the bin's walls, below their top."""
    offset = world.body_pos(body) - world.body_pos(bin_body)
    return bool(np.all(np.abs(offset[:2]) < BIN_INNER) and offset[2] < BIN_WALL)


class PlaceInBin(Task):
    name = "PlaceInBin"
    max_steps = 120
    instructions = (
        "put the {color} cube in the bin",
        "place the {color} cube into the bin",
        "drop the {color} cube in the bin",
        "move the {color} cube into the bin",
    )
    # The cubes' colours are distinct and there is one bin, so the colour alone names the goal.
    unseen_wordings = (
        "toss the {color} cube into the bin",
        "get the {color} cube into the bin",
        "the {color} cube, put it in the bin",
        "into the bin with the {color} cube",
        "the {color} one goes in the bin",
        "bin the {color} one",
        "the {color} one, please",
    )
    goal_fields = ("color",)

    def objects_xml(self) -> str:
        return "".join(objects.cube(c) for c in _CUBES) + objects.bin_("bin", BIN_INNER, BIN_WALL)

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        bin_xy = rng.uniform([0.42, -0.2], [0.58, 0.2])
        world.set_body_pos("bin", [*bin_xy, 0.0])
        avoid = [(np.array([*bin_xy, 0.0]), BIN_INNER + 0.06)]
        colors = pick_colors(rng, len(_CUBES))
        for cube, color, xy in zip(_CUBES, colors, sample_positions(rng, 3, 0.08, avoid=avoid), strict=True):
            world.set_free_pose(cube, [*xy, objects.CUBE_HALF], rng.uniform(-np.pi, np.pi))
            world.set_rgba(cube, objects.COLORS[color])
        index = int(rng.integers(len(_CUBES)))
        self.colors, self.target = colors, _CUBES[index]
        return {"color": colors[index]}

    def goals(self) -> list[dict[str, str]]:
        return [{"color": color} for color in self.colors]  # in _CUBES order

    def _aim(self, index: int) -> None:
        self.target = _CUBES[index]

    def things(self) -> list[Thing]:
        return [
            *(Thing(c, "cube", color) for c, color in zip(_CUBES, self.colors, strict=True)),
            Thing("bin", "bin"),
        ]

    def pick_body(self) -> str:
        return self.target

    def success(self, world: World) -> bool:
        return in_bin(world, self.target) and not world.touching(world.finger_geoms, self.target)

    def plan(self, world: World) -> list[PlanStep]:
        return pick_and_place(
            world, self.target, objects.CUBE_HALF, lambda w: w.body_pos("bin"), release_z=BIN_WALL + 0.04
        )
