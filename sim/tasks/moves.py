"""Waypoint builders for picking a body up and setting it down somewhere, evaluated as each step starts.

The skills (``sim.skills``) and the long-horizon tasks build their plans from these, so the expert of a
long task is its skills' reference executors run back to back. Every step is a function of the world
evaluated when the expert reaches it, so a later pick aims at where its object is by then (it may have been
nudged, dropped or stacked). The single-pick tasks keep their own plans (``base.pick_and_place``), so their
recorded demonstrations stay what they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim import objects
from sim.tasks.base import DESCENT_SPEED, RELEASE_HOLD, PlanStep, Waypoint, grasp_yaw
from sim.world import World

CARRY_Z = 0.16  # m, TCP height while carrying: the held object clears a two-cube stack and the bin's walls
APPROACH_Z = 0.12  # m, TCP height above an object before descending onto it
RELEASE_CLEARANCE = 0.006  # m, gap under a held object when it is let go above its support
RETREAT = 0.1  # m, how far the open gripper rises after letting go

# Rotational symmetry of each kind's footprint about z: the fingers may close along any of these angles.
SYMMETRY = {"cube": np.pi / 2, "cylinder": None, "block": np.pi}  # grasp_yaw's; None: round about z
HALF_HEIGHT = {
    "cube": objects.CUBE_HALF,
    "cylinder": objects.CYLINDER_HALF_HEIGHT,
    "block": objects.BLOCK_HALF[2],
}


def tcp_yaw(world: World) -> float:
    """The TCP's yaw about world z (``sim.experts.down_mat``'s convention)."""
    mat = world.tcp_mat
    return float(np.arctan2(mat[0, 1], mat[0, 0]))


HAND_REACH = 0.2  # m: objects closer than this to a grasp may meet the hand, which is long across the fingers


def clear_yaw(world: World, body: str, kind: str, neighbours: Sequence[str]) -> float:
    """The grasp yaw of ``body`` whose finger axis (the hand's long side) points furthest away from the
    nearest of ``neighbours``: of a cube's two grasps, the one that keeps the hand off a stack beside it."""
    symmetry = SYMMETRY[kind]
    base = grasp_yaw(world.body_yaw(body), symmetry)
    square = symmetry is not None and symmetry <= np.pi / 2  # a cube: two grasps, 90 degrees apart
    options = [base, grasp_yaw(base + np.pi / 2, np.pi)] if square else [base]
    pos = world.body_pos(body)[:2]
    offsets = [world.body_pos(n)[:2] - pos for n in neighbours if n != body]
    near = [o / np.linalg.norm(o) for o in offsets if 1e-6 < np.linalg.norm(o) < HAND_REACH]
    if not near:
        return base

    def alignment(yaw: float) -> float:  # |cos| of the angle between the finger axis and the nearest object
        axis = np.array([np.sin(yaw), -np.cos(yaw)])
        return max(abs(float(axis @ d)) for d in near)

    return min(options, key=alignment)


def pick_steps(body: str, kind: str, neighbours: Sequence[str] = ()) -> list[PlanStep]:
    """Rise clear of whatever is below, go above ``body``, descend, close and lift to the carry height;
    the grasp keeps the hand's long side away from ``neighbours`` (``clear_yaw``)."""
    memo: dict = {}

    def rise(w: World) -> Waypoint:
        tcp = w.tcp_pos
        return Waypoint(np.array([tcp[0], tcp[1], max(tcp[2], APPROACH_Z)]), tcp_yaw(w), -1.0, tolerance=0.02)

    def above(w: World) -> Waypoint:
        pos = w.body_pos(body)
        memo["yaw"] = clear_yaw(w, body, kind, neighbours)
        return Waypoint(np.array([pos[0], pos[1], max(APPROACH_Z, pos[2] + 0.08)]), memo["yaw"], -1.0, 0.02)

    def descend(w: World) -> Waypoint:
        memo["grasp"] = w.body_pos(body)
        return Waypoint(memo["grasp"], memo["yaw"], -1.0, speed=DESCENT_SPEED)

    def close(w: World) -> Waypoint:
        return Waypoint(memo["grasp"], memo["yaw"], 1.0)

    def lift(w: World) -> Waypoint:
        grasp = memo["grasp"]  # off the top of a stack, lift by a carry's height above where it was
        z = max(CARRY_Z, grasp[2] + CARRY_Z - objects.CUBE_HALF)
        return Waypoint(np.array([grasp[0], grasp[1], z]), memo["yaw"], 1.0, tolerance=0.02)

    return [rise, above, descend, close, lift]


def place_steps(spot, release_z) -> list[PlanStep]:
    """Rise to the carry height where the gripper is (so the held object sweeps over everything), carry it
    over ``spot(world)`` (xy, chosen once, when the carry starts), lower it until its centre is at
    ``release_z(world)``, open and rise. The yaw is the gripper's as the carry starts."""
    memo: dict = {}

    def rise(w: World) -> Waypoint:
        tcp = w.tcp_pos
        return Waypoint(np.array([tcp[0], tcp[1], max(tcp[2], CARRY_Z)]), tcp_yaw(w), 1.0, tolerance=0.02)

    def over(w: World) -> Waypoint:
        memo["yaw"], memo["xy"], memo["z"] = tcp_yaw(w), np.asarray(spot(w))[:2], float(release_z(w))
        return Waypoint(np.array([*memo["xy"], memo["z"] + 0.08]), memo["yaw"], 1.0, tolerance=0.015)

    def lower(w: World) -> Waypoint:
        return Waypoint(np.array([*memo["xy"], memo["z"]]), memo["yaw"], 1.0, tolerance=0.01)

    def release(w: World) -> Waypoint:
        return Waypoint(
            np.array([*memo["xy"], memo["z"]]), memo["yaw"], -1.0, hold=RELEASE_HOLD, tolerance=0.02
        )

    def retreat(w: World) -> Waypoint:
        return Waypoint(w.tcp_pos + [0, 0, RETREAT], memo["yaw"], -1.0, tolerance=0.02)

    return [rise, over, lower, release, retreat]
