"""Pick up the {color} {object}: three objects of distinct colours; lift the named one."""

from __future__ import annotations

import numpy as np

from sim import objects
from sim.tasks.base import DESCENT_SPEED, Task, Thing, Waypoint, grasp_yaw, pick_colors, sample_positions
from sim.world import World

_OBJECTS = {"cube_a": "cube", "cube_b": "cube", "cylinder": "cylinder"}
_REST_Z = {"cube": objects.CUBE_HALF, "cylinder": objects.CYLINDER_HALF_HEIGHT}
LIFT_HEIGHT = 0.08  # m above its resting height


class PickUp(Task):
    name = "PickUp"
    max_steps = 80
    instructions = (
        "pick up the {color} {object}",
        "lift the {color} {object}",
        "grab the {color} {object} and raise it",
        "take the {color} {object} off the table",
    )
    # The three objects' colours are distinct, so the colour alone names one (docs/sim.md).
    unseen_wordings = (
        "raise the {color} {object}",
        "hold the {color} {object} up in the air",
        "the {color} {object}, pick it up",
        "pick the {color} one up",
        "can you hand me that {color} {object}",
        "the {color} one, please",
        "{color}, please",
    )
    goal_fields = ("color", "object")

    def objects_xml(self) -> str:
        return objects.cube("cube_a") + objects.cube("cube_b") + objects.cylinder("cylinder")

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        colors = pick_colors(rng, len(_OBJECTS))
        for (body, shape), color, xy in zip(
            _OBJECTS.items(), colors, sample_positions(rng, 3, 0.09), strict=True
        ):
            world.set_free_pose(body, [*xy, _REST_Z[shape]], rng.uniform(-np.pi, np.pi))
            world.set_rgba(body, objects.COLORS[color])
        index = int(rng.integers(len(_OBJECTS)))
        self.colors, self.target = colors, list(_OBJECTS)[index]
        return {"color": colors[index], "object": _OBJECTS[self.target]}

    def goals(self) -> list[dict[str, str]]:
        return [
            {"color": color, "object": shape}
            for color, shape in zip(self.colors, _OBJECTS.values(), strict=True)
        ]

    def _aim(self, index: int) -> None:
        self.target = list(_OBJECTS)[index]

    def things(self) -> list[Thing]:
        return [
            Thing(body, shape, color)
            for (body, shape), color in zip(_OBJECTS.items(), self.colors, strict=True)
        ]

    def pick_body(self) -> str:
        return self.target

    def success(self, world: World) -> bool:
        lifted = world.body_pos(self.target)[2] > _REST_Z[_OBJECTS[self.target]] + LIFT_HEIGHT
        return bool(lifted and world.grasped(self.target))

    def plan(self, world: World) -> list[Waypoint]:
        pos = world.body_pos(self.target)
        symmetry = np.pi / 2 if _OBJECTS[self.target] == "cube" else None  # a standing cylinder is round
        yaw = grasp_yaw(world.body_yaw(self.target), symmetry)
        above = np.array([pos[0], pos[1], 0.12])
        grasp = np.array([pos[0], pos[1], pos[2]])
        return [
            Waypoint(above, yaw, -1.0, tolerance=0.02),
            Waypoint(grasp, yaw, -1.0, speed=DESCENT_SPEED),
            Waypoint(grasp, yaw, 1.0),
            Waypoint(grasp + [0, 0, 0.2], yaw, 1.0),
        ]
