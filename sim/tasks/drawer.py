"""Open or close the drawer: a low cabinet on one side of the table, two distractor cubes on the other.

The expert hooks the closed gripper into the gap behind the handle to pull, and pushes the handle to close.
All its waypoints are computed in the cabinet's frame (drawer slides along the cabinet's -x).
"""

from __future__ import annotations

import numpy as np

from sim import objects
from sim.objects import DRAWER_HALF, HANDLE_STANDOFF
from sim.tasks.base import PlanStep, Task, Thing, Waypoint, grasp_yaw, pick_colors, sample_positions
from sim.world import World

_JOINT = "drawer"
_CUBES = ("cube_a", "cube_b")
OPENED, CLOSED = 0.12, 0.02  # m of drawer travel that count as open / closed
_HX, _, _HZ = DRAWER_HALF


class _DrawerScene(Task):
    initial_travel: tuple[float, float]

    def objects_xml(self) -> str:
        return objects.drawer("drawer") + "".join(objects.cube(c) for c in _CUBES)

    def contact_xml(self) -> str:
        # The cabinet is static, so MuJoCo's parent-child filter does not apply to its drawer.
        return '<exclude body1="drawer" body2="drawer_tray"/>'

    def randomize(self, world: World, rng: np.random.Generator) -> dict[str, str]:
        side = float(rng.choice([-1.0, 1.0]))  # which side of the table the cabinet stands on
        self.origin = np.array([rng.uniform(0.5, 0.6), side * rng.uniform(0.28, 0.32), 0.0])
        self.yaw = side * np.pi / 2  # the drawer opens towards the middle of the table
        world.set_body_pos("drawer", self.origin, self.yaw)
        world.set_joint_value(_JOINT, rng.uniform(*self.initial_travel))
        low, high = np.array([0.36, 0.06]), np.array([0.64, 0.24])
        cube_region = (low, high) if side < 0 else (low * [1, -1] - [0, 0.18], high * [1, -1] + [0, 0.18])
        cube_region = (np.minimum(*cube_region), np.maximum(*cube_region))
        self.cube_colors = pick_colors(rng, 2)
        for cube, color, xy in zip(
            _CUBES, self.cube_colors, sample_positions(rng, 2, 0.08, *cube_region), strict=True
        ):
            world.set_free_pose(cube, [*xy, objects.CUBE_HALF], rng.uniform(-np.pi, np.pi))
            world.set_rgba(cube, objects.COLORS[color])
        return {}

    def things(self) -> list[Thing]:
        return [
            Thing("drawer", "drawer"),
            *(Thing(c, "cube", k) for c, k in zip(_CUBES, self.cube_colors, strict=True)),
        ]

    def travel(self, world: World) -> float:
        return world.joint_value(_JOINT)

    def is_open(self, world: World) -> bool:
        return self.travel(world) > OPENED

    def is_closed(self, world: World) -> bool:
        return self.travel(world) < CLOSED

    def open_stroke(self, world: World) -> list[PlanStep]:
        """Hook the closed gripper behind the handle and pull the drawer out."""
        gap = -_HX - 0.034 - self.travel(world)  # between the drawer front and its handle
        return self._stroke(gap, gap - 0.17)

    def close_stroke(self, world: World) -> list[PlanStep]:
        """Push the handle from outside until the drawer is in."""
        outside = -_HX - HANDLE_STANDOFF - 0.025  # the handle's outer side, fingers just clear of it
        return self._stroke(outside - self.travel(world), outside + 0.01)

    def to_world(self, local_x: float, z: float) -> np.ndarray:
        """A point on the cabinet's centre line, ``local_x`` along its x axis, at height ``z``."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return self.origin + np.array([c * local_x, s * local_x, z])

    def _stroke(self, start_x: float, end_x: float) -> list[PlanStep]:
        """Lower the closed gripper at ``start_x`` (cabinet frame), move it to ``end_x``, lift."""
        yaw = grasp_yaw(self.yaw, np.pi)  # the fingers' thin side along the drawer's travel
        return [
            Waypoint(self.to_world(start_x, 0.15), yaw, 1.0, tolerance=0.02),
            Waypoint(self.to_world(start_x, _HZ), yaw, 1.0, tolerance=0.006),
            Waypoint(self.to_world(end_x, _HZ), yaw, 1.0, tolerance=0.01, speed=0.5),
            lambda w: Waypoint(w.tcp_pos + [0, 0, 0.1], yaw, 1.0, tolerance=0.02),
        ]


class OpenDrawer(_DrawerScene):
    name = "OpenDrawer"
    max_steps = 100
    initial_travel = (0.0, 0.01)
    instructions = ("open the drawer", "pull the drawer open", "slide the drawer out", "open up the drawer")

    def success(self, world: World) -> bool:
        return self.is_open(world)

    def plan(self, world: World) -> list[PlanStep]:
        return self.open_stroke(world)


class CloseDrawer(_DrawerScene):
    name = "CloseDrawer"
    max_steps = 100
    initial_travel = (0.14, 0.2)
    instructions = ("close the drawer", "push the drawer shut", "slide the drawer closed", "shut the drawer")

    def success(self, world: World) -> bool:
        return self.is_closed(world)

    def plan(self, world: World) -> list[PlanStep]:
        return self.close_stroke(world)
