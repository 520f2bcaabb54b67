"""The tabletop scene as MJCF: table, lights, cameras, the robot and a task's objects.

Conventions (the world frame): the table top is the plane z = 0, the robot's base stands at the origin on
the table's back edge, +x points away from the robot across the table, +z up.

Collision groups (MuJoCo collides two geoms when contype of one ANDs conaffinity of the other):
  table and objects: contype 1, conaffinity 3 (collide with each other and with the robot);
  robot links:       contype 2, conaffinity 0 (collide with table and objects, never with themselves);
  visual markers:    contype 0, conaffinity 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim import robot

TABLE_HALF = (0.55, 0.6, 0.02)  # m, half extents of the table top
TABLE_CENTER_X = 0.35
OBJECT_GROUP = 'contype="1" conaffinity="3"'
AGENTVIEW_POS = (1.0, 0.0, 0.72)
AGENTVIEW_TARGET = (0.42, 0.0, 0.06)


@dataclass(frozen=True)
class RenderConfig:
    """Render quality. All off by default: on a CPU renderer they cost 5-60x (see docs).

    Training and evaluation must use the same settings, so they are recorded with every dataset and result.
    """

    shadows: bool = False
    reflections: bool = False
    multisample: bool = False


def look_at_xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` with world ``up`` upward in the image."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    image_up = np.cross(right, forward)
    return " ".join(f"{v:.6f}" for v in (*right, *image_up))


def _header(render: RenderConfig, image_size: tuple[int, int], timestep: float) -> str:
    shadowsize = 4096 if render.shadows else 0
    offsamples = 4 if render.multisample else 0
    side = max(640, *image_size)
    return (
        '<compiler angle="radian" autolimits="true"/>'
        f'<option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>'
        f'<visual><quality shadowsize="{shadowsize}" offsamples="{offsamples}"/>'
        f'<global offwidth="{side}" offheight="{side}"/>'
        '<headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0 0 0"/></visual>'
    )


def _assets(render: RenderConfig) -> str:
    reflectance = 0.15 if render.reflections else 0.0
    return (
        "<asset>"
        '<texture name="floor" type="2d" builtin="checker" rgb1="0.22 0.24 0.26" rgb2="0.18 0.2 0.22" '
        'width="64" height="64"/>'
        '<material name="floor" texture="floor" texrepeat="8 8"/>'
        f'<material name="table" rgba="0.62 0.5 0.38 1" reflectance="{reflectance}"/>'
        "</asset>"
    )


def _world(render: RenderConfig, objects_xml: str) -> str:
    castshadow = "true" if render.shadows else "false"
    agentview = look_at_xyaxes(AGENTVIEW_POS, AGENTVIEW_TARGET)
    hx, hy, hz = TABLE_HALF
    return (
        "<worldbody>"
        f'<light name="key" directional="true" pos="0.5 0.3 2" dir="-0.2 -0.15 -1" diffuse="0.55 0.55 0.55" '
        f'castshadow="{castshadow}"/>'
        '<geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" material="floor" contype="0" '
        'conaffinity="0"/>'
        f'<geom name="table" type="box" pos="{TABLE_CENTER_X} 0 {-hz}" size="{hx} {hy} {hz}" material="table" '
        f"{OBJECT_GROUP}/>"
        f'<camera name="agentview" pos="{AGENTVIEW_POS[0]} {AGENTVIEW_POS[1]} {AGENTVIEW_POS[2]}" xyaxes="{agentview}" fovy="54"/>'
        + robot.arm_xml((0.0, 0.0, 0.0))
        + objects_xml
        + "</worldbody>"
    )


def scene_xml(
    objects_xml: str,
    render: RenderConfig,
    image_size: tuple[int, int],
    timestep: float,
    contact_xml: str = "",
) -> str:
    """The whole MJCF document of a task's scene."""
    return (
        '<mujoco model="vla_tabletop">'
        + _header(render, image_size, timestep)
        + f"<default>{robot.defaults_xml()}</default>"
        + _assets(render)
        + _world(render, objects_xml)
        + f"<actuator>{robot.actuators_xml()}</actuator>"
        + (f"<contact>{contact_xml}</contact>" if contact_xml else "")
        + "</mujoco>"
    )
