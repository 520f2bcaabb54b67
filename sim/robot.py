"""A 7-DoF arm with the Franka Emika Panda's kinematics, and a parallel two-finger gripper, as MJCF.

The kinematic chain is generated from Franka's published modified (Craig) Denavit-Hartenberg parameters, so
forward kinematics match the real robot; links are primitive shapes (capsules and boxes) kept in this file.
In modified DH, frame i is reached from frame i-1 by RotX(alpha) TransX(a) RotZ(theta) TransZ(d), which in
MJCF is a body at pos (a, -d sin(alpha), d cos(alpha)) rotated by alpha about x, with a hinge about its z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DHRow:
    a: float  # m, a_{i-1}
    d: float  # m, d_i
    alpha: float  # rad, alpha_{i-1}
    lower: float  # rad, joint limit
    upper: float  # rad


# Franka Emika Panda, from Franka's robot and interface specifications.
PANDA_DH = (
    DHRow(0.0, 0.333, 0.0, -2.8973, 2.8973),
    DHRow(0.0, 0.0, -math.pi / 2, -1.7628, 1.7628),
    DHRow(0.0, 0.316, math.pi / 2, -2.8973, 2.8973),
    DHRow(0.0825, 0.0, math.pi / 2, -3.0718, -0.0698),
    DHRow(-0.0825, 0.384, -math.pi / 2, -2.8973, 2.8973),
    DHRow(0.0, 0.0, math.pi / 2, -0.0175, 3.7525),
    DHRow(0.088, 0.0, math.pi / 2, -2.8973, 2.8973),
)
FLANGE_D = 0.107  # m, flange along joint 7's axis
HAND_TCP = 0.1034  # m, flange to the point between the fingertips
FINGER_TRAVEL = 0.04  # m per finger: fully open is 0.08 m between the pads

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
TCP_SITE = "tcp"
HAND_BODY = "hand"
FINGER_GEOMS = ("finger_left_pad", "finger_right_pad")

# A comfortable configuration with the gripper pointing straight down above the table.
HOME_QPOS = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, math.pi / 4])

# Position-servo gains per joint (N m / rad) and joint damping (N m s / rad): stiff enough to track a
# 10 Hz Cartesian target, damped to avoid ringing. Gravity is compensated on every link (gravcomp).
_KP = (2000, 2000, 1500, 1500, 800, 500, 300)
_DAMPING = (80, 80, 60, 60, 30, 20, 10)
_LINK_RADIUS = (0.06, 0.06, 0.055, 0.055, 0.05, 0.045, 0.04)


def _body_frame(row: DHRow) -> tuple[str, str]:
    pos = (row.a, -row.d * math.sin(row.alpha), row.d * math.cos(row.alpha))
    quat = (math.cos(row.alpha / 2), math.sin(row.alpha / 2), 0.0, 0.0)
    return _fmt(pos), _fmt(quat)


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _link_geom(index: int, child_pos: tuple[float, float, float]) -> str:
    """A capsule from this link's origin to the next joint (a sphere where they coincide)."""
    radius = _LINK_RADIUS[index]
    length = math.dist((0, 0, 0), child_pos)
    common = f'class="arm_link" name="link{index + 1}_geom" size="{radius}"'
    if length < 1e-6:
        return f'<geom {common} type="sphere"/>'
    return f'<geom {common} type="capsule" fromto="0 0 0 {_fmt(child_pos)}"/>'


def _gripper_xml() -> str:
    # The hand is mounted -45 degrees about the flange axis, as on the real Panda.
    q = (math.cos(-math.pi / 8), 0.0, 0.0, math.sin(-math.pi / 8))

    def finger(name: str, sign: int) -> str:
        return (
            f'<body name="{name}" pos="0 0 0.0584">'
            f'<joint name="{name}" class="finger" axis="0 {sign} 0"/>'
            f'<geom class="finger_link" pos="0 {sign * 0.018} 0.018" size="0.01 0.008 0.018"/>'
            f'<geom class="finger_pad" name="{name}_pad" pos="0 {sign * 0.005} 0.0475" size="0.011 0.005 0.012"/>'
            "</body>"
        )

    return (
        f'<body name="{HAND_BODY}" pos="0 0 {FLANGE_D}" quat="{_fmt(q)}">'
        '<geom class="hand" type="box" pos="0 0 0.03" size="0.03 0.1 0.03"/>'
        '<geom class="hand" type="cylinder" pos="0 0 0.005" size="0.04 0.005"/>'
        f'<site name="{TCP_SITE}" pos="0 0 {HAND_TCP}" size="0.005" rgba="1 0 0 0" group="4"/>'
        '<camera name="wrist" pos="0.07 0 0.02" xyaxes="0 1 0 0.94 0 0.34" fovy="75"/>'
        + finger(FINGER_JOINTS[0], 1)
        + finger(FINGER_JOINTS[1], -1)
        + "</body>"
    )


def arm_xml(base_pos: tuple[float, float, float]) -> str:
    """The arm's worldbody subtree: nested link bodies from the DH table, ending in the gripper."""
    opening = f'<body name="link0" pos="{_fmt(base_pos)}"><geom class="arm_base" type="cylinder" size="0.08 0.05" pos="0 0 0.05"/>'
    closing = "</body>"
    for i, row in enumerate(PANDA_DH):
        pos, quat = _body_frame(row)
        if i + 1 < len(PANDA_DH):
            child = PANDA_DH[i + 1]
            child_pos = (child.a, -child.d * math.sin(child.alpha), child.d * math.cos(child.alpha))
        else:
            child_pos = (0.0, 0.0, FLANGE_D)
        opening += (
            f'<body name="link{i + 1}" pos="{pos}" quat="{quat}" gravcomp="1">'
            f'<joint name="{ARM_JOINTS[i]}" class="arm" range="{row.lower} {row.upper}" damping="{_DAMPING[i]}"/>'
            + _link_geom(i, child_pos)
        )
        closing += "</body>"
    return opening + _gripper_xml() + closing


def defaults_xml() -> str:
    """Default classes for the robot's joints and geoms (collision groups documented in scene.py)."""
    return (
        '<default class="arm"><joint armature="0.1" limited="true"/></default>'
        '<default class="finger"><joint type="slide" range="0 0.04" damping="5" armature="0.01" limited="true"/></default>'
        '<default class="arm_link"><geom rgba="0.92 0.92 0.95 1" contype="2" conaffinity="0" density="600"/></default>'
        '<default class="arm_base"><geom rgba="0.3 0.3 0.32 1" contype="0" conaffinity="0"/></default>'
        '<default class="hand"><geom rgba="0.92 0.92 0.95 1" contype="2" conaffinity="0" density="600"/></default>'
        '<default class="finger_link"><geom type="box" rgba="0.25 0.25 0.27 1" contype="2" conaffinity="0" density="600"/></default>'
        '<default class="finger_pad"><geom type="box" rgba="0.15 0.15 0.15 1" contype="2" conaffinity="0" '
        'friction="1.5 0.02 0.001" condim="4" solref="0.01 1" density="600"/></default>'
    )


def actuators_xml() -> str:
    arm = "".join(
        f'<position name="{j}" joint="{j}" kp="{kp}" ctrlrange="{r.lower} {r.upper}"/>'
        for j, kp, r in zip(ARM_JOINTS, _KP, PANDA_DH, strict=True)
    )
    fingers = "".join(
        f'<position name="{j}" joint="{j}" kp="400" ctrlrange="0 {FINGER_TRAVEL}" forcerange="-25 25"/>'
        for j in FINGER_JOINTS
    )
    return arm + fingers
