"""Two cubes and two coloured target pads. One scene, two skills: push a cube to a target, or place it there.

The same scene under different verbs makes the instruction, not the layout, decide what to do.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from sim import objects
from sim.tasks.base import (
    PlanStep,
    Task,
    Thing,
    Track,
    Waypoint,
    grasp_yaw,
    pick_and_place,
    pick_colors,
    sample_positions,
)
from sim.world import World

_CUBES = ("cube_a", "cube_b")
_PADS = ("pad_a", "pad_b")
_PAIRS = list(product(range(len(_CUBES)), range(len(_PADS))))  # (cube, pad) indices: the goals, in order
_ON_TARGET = 0.035  # m, cube centre to pad centre
_PUSH_Z = 0.026  # m, TCP height while pushing
_CLEAR_Z = 0.08  # m, TCP height when moving around the cube


def _clearance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Distance from ``point`` to the segment start-end (xy)."""
    seg = end - start
    t = np.clip(np.dot(point - start, seg) / np.dot(seg, seg), 0.0, 1.0)
    return float(np.linalg.norm(point - (start + t * seg)))


class _TargetScene(Task):
    goal_fields = ("color", "target")

    def objects_xml(self) -> str:
        return "".join(objects.cube(c) for c in _CUBES) + "".join(objects.pad(p) for p in _PADS)

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        cube_colors, pad_colors = pick_colors(rng, 2), pick_colors(rng, 2)
        cube, pad = int(rng.integers(2)), int(rng.integers(2))
        for _ in range(100):  # the other cube must not sit on the path from the cube to its target
            points = sample_positions(rng, 4, 0.11)
            if _clearance(points[1 - cube], points[cube], points[2 + pad]) > 0.07:
                break
        for body, color, xy in zip(_CUBES, cube_colors, points[:2], strict=True):
            world.set_free_pose(body, [*xy, objects.CUBE_HALF], rng.uniform(-np.pi, np.pi))
            world.set_rgba(body, objects.COLORS[color])
        for body, color, xy in zip(_PADS, pad_colors, points[2:], strict=True):
            world.set_body_pos(body, [*xy, 0.001])
            world.set_rgba(body, objects.COLORS[color])
        self.cube_colors, self.pad_colors = cube_colors, pad_colors
        self._aim(_PAIRS.index((cube, pad)))
        return {"color": cube_colors[cube], "target": pad_colors[pad]}

    def goals(self) -> list[dict[str, str]]:
        # The layout keeps the other cube off the drawn goal's push path only: another goal's path may
        # pass by it (the scene is the plain reset's, whichever goal is then chosen).
        return [{"color": self.cube_colors[c], "target": self.pad_colors[p]} for c, p in _PAIRS]

    def _aim(self, index: int) -> None:
        cube, pad = _PAIRS[index]
        self.cube, self.pad = _CUBES[cube], _PADS[pad]

    def things(self) -> list[Thing]:
        cubes = [Thing(c, "cube", color) for c, color in zip(_CUBES, self.cube_colors, strict=True)]
        return cubes + [Thing(p, "target", color) for p, color in zip(_PADS, self.pad_colors, strict=True)]

    def on_target(self, world: World) -> bool:
        return on_target(world, self.cube, self.pad)


class PushToTarget(_TargetScene):
    name = "PushToTarget"
    max_steps = 120
    instructions = (
        "push the {color} cube to the {target} target",
        "slide the {color} cube onto the {target} target",
        "push the {color} cube onto the {target} circle",
        "shove the {color} cube to the {target} target",
    )
    # Both colours (cube, then target). The scene is PlaceOnTarget's too, so the verb stays a push: only
    # the nouns, which the scene makes obvious, may go.
    unseen_wordings = (
        "nudge the {color} cube over to the {target} target",
        "slide the {color} cube along the table to the {target} target",
        "the {color} cube, push it to the {target} target",
        "onto the {target} target, push the {color} cube",
        "push the {color} one to the {target} one",
        "slide {color} onto {target}",
        "push {color} to {target}, please",
    )

    def success(self, world: World) -> bool:
        return self.on_target(world)

    def plan(self, world: World) -> list[PlanStep]:
        return push_steps(self.cube, self.pad, self.max_steps)


def on_target(world: World, cube: str, pad: str) -> bool:
    """Whether ``cube`` rests on the table within the pad's disc (its centre within 35 mm of the pad's)."""
    offset = world.body_pos(cube) - world.body_pos(pad)
    return bool(np.linalg.norm(offset[:2]) < _ON_TARGET and offset[2] < objects.CUBE_HALF + 0.005)


def push_steps(cube: str, pad: str, timeout: int) -> list[PlanStep]:
    """One closed-loop step that pushes ``cube`` onto ``pad`` (``push_waypoint``) for up to ``timeout`` steps."""
    return [Track(lambda world: push_waypoint(world, cube, pad, timeout))]


def push_waypoint(world: World, cube_body: str, pad: str, timeout: int) -> Waypoint:
    """Closed loop, from geometry alone: get behind the cube (as seen from the goal), lower, push along
    the line to the goal; whenever the cube has slipped off that line, lift and get behind it again."""
    cube, tcp = world.body_pos(cube_body)[:2], world.tcp_pos
    to_goal = world.body_pos(pad)[:2] - cube
    distance = float(np.linalg.norm(to_goal))
    heading = to_goal / max(distance, 1e-6)
    behind = cube - heading * (objects.CUBE_HALF + 0.025)
    offset = tcp[:2] - cube
    along, across = offset @ heading, abs(offset @ np.array([-heading[1], heading[0]]))
    if along < -objects.CUBE_HALF and across < 0.012 and tcp[2] < 0.03:
        aim, z = cube - heading * (objects.CUBE_HALF + 0.012) + heading * min(0.025, distance), _PUSH_Z
    elif np.linalg.norm(tcp[:2] - behind) < 0.01:
        aim, z = behind, _PUSH_Z  # lower behind the cube
    elif tcp[2] < 0.06:
        aim, z = tcp[:2], _CLEAR_Z  # lift before moving around the cube
    else:
        aim, z = behind, _CLEAR_Z
    # Fingers across the push direction; the closed gripper is symmetric under half a turn.
    yaw = grasp_yaw(float(np.arctan2(heading[1], heading[0])), np.pi)
    return Waypoint(np.array([*aim, z]), yaw, 1.0, tolerance=0.0, timeout=timeout)


class PlaceOnTarget(_TargetScene):
    name = "PlaceOnTarget"
    max_steps = 120
    instructions = (
        "place the {color} cube on the {target} target",
        "put the {color} cube on the {target} target",
        "pick up the {color} cube and set it down on the {target} target",
        "move the {color} cube onto the {target} circle",
    )
    # As PushToTarget's, with a placing verb.
    unseen_wordings = (
        "set the {color} cube down on the {target} target",
        "carry the {color} cube to the {target} target",
        "the {color} cube, place it on the {target} target",
        "on the {target} target, place the {color} cube",
        "put the {color} one on the {target} one",
        "{color} on {target}, please",
        "can you pop the {color} cube onto the {target} target",
    )

    def pick_body(self) -> str:
        return self.cube

    def success(self, world: World) -> bool:
        return self.on_target(world) and not world.touching(world.finger_geoms, self.cube)

    def plan(self, world: World) -> list[PlanStep]:
        return pick_and_place(
            world, self.cube, objects.CUBE_HALF, lambda w: w.body_pos(self.pad), objects.CUBE_HALF + 0.01
        )
