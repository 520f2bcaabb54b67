"""What the runtime needs from a robot, simulated or real: observe, act, home, stop, and declared limits.

A robot speaks the stack's action space (``sim.contract``): a 7-D TCP delta ``[dx, dy, dz, droll, dpitch,
dyaw, gripper]`` in [-1, 1], scaled by the robot's ``translation_step`` and ``rotation_step``, applied to a
commanded TCP pose exactly as the simulator's controller does (``sim.controller``), so an action means on the
robot what it meant in training. ``observe()`` returns the observation of ``sim.contract`` without the
instruction (the runtime adds the one it was given). Every action a robot receives has already passed the
safety layer (``policies.runtime.safety``); a robot still refuses what it cannot do, loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sim.contract import ACTION_DIM


def _vector(values, length: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape != (length,) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be {length} finite numbers, got {values!r}")
    return array


@dataclass
class RobotLimits:
    """What a robot declares it can safely do, per control step (the safety layer enforces it)."""

    translation_step: float = 0.05  # m of commanded TCP motion per step at |action| = 1 (sim: 0.05)
    rotation_step: float = 0.25  # rad of commanded TCP rotation per step at |action| = 1 (sim: 0.25)
    max_translation: float = 0.05  # m: cap on the commanded TCP translation of one step
    max_rotation: float = 0.25  # rad: cap on the commanded TCP rotation of one step
    max_joint_step: float = 0.2  # rad: cap on any joint's motion in one step (DROID: 0.2 at 15 Hz)
    workspace_low: np.ndarray = field(default_factory=lambda: np.array([0.15, -0.45, 0.0]))  # m, base frame
    workspace_high: np.ndarray = field(default_factory=lambda: np.array([0.85, 0.45, 0.55]))
    joint_low: np.ndarray = field(default_factory=lambda: np.full(7, -np.inf))  # rad
    joint_high: np.ndarray = field(default_factory=lambda: np.full(7, np.inf))
    joint_margin: float = 0.1  # rad kept clear of each joint limit (Polymetis: 0.1)
    max_gripper_change: float = 2.0  # per step, in action units (-1 open .. +1 closed); 2: unlimited
    max_lead: float = 0.08  # m the commanded TCP may lead the measured one (sim.controller: 0.08)

    def __post_init__(self):
        self.workspace_low = _vector(self.workspace_low, 3, "workspace_low")
        self.workspace_high = _vector(self.workspace_high, 3, "workspace_high")
        self.joint_low = np.asarray(self.joint_low, dtype=np.float64).reshape(-1)
        self.joint_high = np.asarray(self.joint_high, dtype=np.float64).reshape(-1)
        if np.any(self.workspace_low >= self.workspace_high):
            raise ValueError(
                f"workspace_low {self.workspace_low} must lie below workspace_high {self.workspace_high}"
            )
        if self.joint_low.shape != self.joint_high.shape or np.any(self.joint_low >= self.joint_high):
            raise ValueError("joint_low and joint_high must be vectors of one length with low < high")
        for name in (
            "translation_step",
            "rotation_step",
            "max_translation",
            "max_rotation",
            "max_joint_step",
            "max_lead",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.joint_margin < 0 or not 0 < self.max_gripper_change <= 2:
            raise ValueError("joint_margin must be >= 0 and max_gripper_change in (0, 2]")


class Robot(Protocol):
    limits: RobotLimits

    def observe(self) -> dict:
        """``{"images": {camera: uint8 (H, W, 3)}, "state": float32 (17,)}``: ``sim.contract``'s keys and layout."""

    def act(self, action: np.ndarray) -> None:
        """Execute one float (7,) action in [-1, 1] (one control step's command; returns without waiting)."""

    def home(self) -> None:
        """Move to the start posture and command the pose it is in."""

    def stop(self) -> None:
        """Hold still now (the e-stop and the watchdog call it); safe to call repeatedly."""


# Optional methods the runtime uses when a robot has them (``hasattr``), so an adapter can start without:
#   state() -> float32 (17,)             the state of ``observe()`` without rendering cameras, read every
#                                        control step by the safety layer (else: the last observation's)
#   predict_joints(action) -> (7,)       the joint targets the robot would command for ``action`` (its IK),
#                                        without moving; makes the safety layer's joint checks predictive
#   done, success                        whether the episode is over and succeeded (simulated robots)


ACTION_SHAPE = (ACTION_DIM,)
