"""When a grasp happens: the first control step at which the fingers surround the object to pick, and the
first step from then on at which the gripper is commanded closed.

A policy that reaches the object but does not close (it hovers with open fingers) shows as a reach without
a close; ``closed_within`` turns a batch of episodes into the rate at which the gripper closes soon enough.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The TCP within this distance of the body's centre has the body between the open fingers (the experts
# close within 0.008 m; a cube's half side is 0.02 m).
REACH_DISTANCE = 0.015  # m
NEVER = -1  # a step that did not happen
REACH_STEP = "grasp_reach_step"  # info keys, in every step's info of a task that picks
CLOSE_STEP = "grasp_close_step"
KEYS = (REACH_STEP, CLOSE_STEP)


class GraspTimer:
    """Fed each control step's observed TCP, the body's position and the commanded gripper (before the
    action acts): records the first reach and the first closing command at or after it."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.reach_step = NEVER
        self.close_step = NEVER

    def update(self, step: int, tcp_pos: np.ndarray, body_pos: np.ndarray, gripper: float) -> None:
        if self.reach_step == NEVER and np.linalg.norm(tcp_pos - body_pos) < REACH_DISTANCE:
            self.reach_step = step
        if self.reach_step != NEVER and self.close_step == NEVER and gripper > 0:
            self.close_step = step

    def info(self) -> dict[str, int]:
        return {REACH_STEP: self.reach_step, CLOSE_STEP: self.close_step}


def closed_within(episodes: Iterable[dict], steps: int) -> dict | None:
    """Over episodes' infos (``KEYS``): how many reached the object and how many of those closed the gripper
    within ``steps`` control steps of reaching it; None when no episode carries the keys (no grasp)."""
    timed = [e for e in episodes if e.get(REACH_STEP) is not None]
    if not timed:
        return None
    reached = [e for e in timed if e[REACH_STEP] != NEVER]
    closed = [e for e in reached if e[CLOSE_STEP] != NEVER and e[CLOSE_STEP] - e[REACH_STEP] <= steps]
    return {
        "episodes": len(timed),
        "reached": len(reached),
        "closed_in_time": len(closed),
        "window_steps": steps,
    }
