"""Object and fixture builders (MJCF fragments) and the colour palette tasks draw from.

Every builder places its object at a neutral pose; tasks move objects and recolour them at each reset, so
one compiled model serves every episode.
"""

from __future__ import annotations

from sim.scene import OBJECT_GROUP

# Named colours used in instructions. Distinct enough to tell apart at 128x128.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.12, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.55, 0.2, 0.75),
    "orange": (1.0, 0.5, 0.05),
}

CUBE_HALF = 0.02  # m
CYLINDER_RADIUS = 0.02  # m
CYLINDER_HALF_HEIGHT = 0.025  # m
_SOLID = 'friction="1 0.01 0.001" solref="0.01 1"'


def cube(name: str, half: float = CUBE_HALF, mass: float = 0.08) -> str:
    return (
        f'<body name="{name}" pos="0 0 {half}"><freejoint name="{name}"/>'
        f'<geom name="{name}" type="box" size="{half} {half} {half}" mass="{mass}" {_SOLID} {OBJECT_GROUP}/>'
        "</body>"
    )


BLOCK_HALF = (0.03, 0.015, 0.02)  # m: a 6 x 3 cm footprint, as tall as a cube


def block(name: str, mass: float = 0.08) -> str:
    """A box longer than it is wide (a cube's height), gripped across its narrow side."""
    size = " ".join(str(h) for h in BLOCK_HALF)
    return (
        f'<body name="{name}" pos="0 0 {BLOCK_HALF[2]}"><freejoint name="{name}"/>'
        f'<geom name="{name}" type="box" size="{size}" mass="{mass}" {_SOLID} {OBJECT_GROUP}/></body>'
    )


def cylinder(name: str, mass: float = 0.08) -> str:
    return (
        f'<body name="{name}" pos="0 0 {CYLINDER_HALF_HEIGHT}"><freejoint name="{name}"/>'
        f'<geom name="{name}" type="cylinder" size="{CYLINDER_RADIUS} {CYLINDER_HALF_HEIGHT}" mass="{mass}" '
        f"{_SOLID} {OBJECT_GROUP}/></body>"
    )


def pad(name: str, radius: float = 0.045) -> str:
    """A flat coloured disc on the table: a visual target, no collisions."""
    return (
        f'<body name="{name}" pos="0 0 0.001"><geom name="{name}" type="cylinder" size="{radius} 0.001" '
        'contype="0" conaffinity="0"/></body>'
    )


def bin_(name: str, inner_half: float = 0.07, wall_height: float = 0.05, wall: float = 0.008) -> str:
    """An open box on the table (fixed); its body origin is at the centre of its floor."""
    h = wall_height / 2
    outer = inner_half + wall
    walls = [
        (f"{outer} 0 {h}", f"{wall} {outer} {h}"),
        (f"{-outer} 0 {h}", f"{wall} {outer} {h}"),
        (f"0 {outer} {h}", f"{outer} {wall} {h}"),
        (f"0 {-outer} {h}", f"{outer} {wall} {h}"),
    ]
    geoms = (
        f'<geom name="{name}_floor" type="box" pos="0 0 0.002" size="{outer} {outer} 0.002" {OBJECT_GROUP}/>'
    )
    geoms += "".join(
        f'<geom name="{name}_wall{i}" type="box" pos="{p}" size="{s}" {OBJECT_GROUP}/>'
        for i, (p, s) in enumerate(walls)
    )
    return f'<body name="{name}" pos="0 0 0">{geoms}</body>'


def button(name: str, radius: float = 0.03) -> str:
    """A push button: a fixed base and a cap on a sprung slide joint (pressed = pushed down)."""
    return (
        f'<body name="{name}_base" pos="0 0 0">'
        f'<geom name="{name}_base" type="cylinder" size="{radius + 0.012} 0.012" pos="0 0 0.012" '
        f'rgba="0.2 0.2 0.22 1" {OBJECT_GROUP}/>'
        f'<body name="{name}" pos="0 0 0.03">'
        f'<joint name="{name}" type="slide" axis="0 0 1" range="-0.016 0" stiffness="60" springref="0" '
        'damping="2"/>'
        f'<geom name="{name}" type="cylinder" size="{radius} 0.008" mass="0.02" {OBJECT_GROUP}/>'
        "</body></body>"
    )


DRAWER_TRAVEL = 0.2  # m
DRAWER_HALF = (0.1, 0.12, 0.04)  # m, half extents of the cabinet
HANDLE_STANDOFF = 0.06  # m, drawer front to handle axis: the gap a gripper hooks into


def drawer(name: str) -> str:
    """A low cabinet whose drawer slides out towards the robot (-x); a bar handle on its front face.

    The cabinet's body origin is the centre of its base on the table. The handle stands HANDLE_STANDOFF proud of
    the drawer front, leaving a gap a closed gripper fits into.
    """
    hx, hy, hz = DRAWER_HALF
    t = 0.008  # wall thickness
    shell = [
        ("top", f"0 0 {2 * hz - t / 2}", f"{hx} {hy} {t / 2}"),
        ("back", f"{hx - t / 2} 0 {hz}", f"{t / 2} {hy} {hz}"),
        ("left", f"0 {hy - t / 2} {hz}", f"{hx} {t / 2} {hz}"),
        ("right", f"0 {-(hy - t / 2)} {hz}", f"{hx} {t / 2} {hz}"),
    ]
    geoms = "".join(
        f'<geom name="{name}_{part}" type="box" pos="{p}" size="{s}" rgba="0.45 0.4 0.36 1" {OBJECT_GROUP}/>'
        for part, p, s in shell
    )
    box_h = hz - t
    front_x = -hx + t / 2
    tray = (
        f'<body name="{name}_tray" pos="0 0 {t + box_h}">'
        f'<joint name="{name}" type="slide" axis="-1 0 0" range="0 {DRAWER_TRAVEL}" damping="8" '
        'frictionloss="0.3"/>'
        f'<geom name="{name}_front" type="box" pos="{front_x} 0 0" size="{t / 2} {hy - t} {box_h}" '
        f'rgba="0.7 0.64 0.55 1" mass="0.3" {OBJECT_GROUP}/>'
        f'<geom name="{name}_bottom" type="box" pos="0 0 {-box_h + t / 2}" size="{hx - t} {hy - t} {t / 2}" '
        f'rgba="0.6 0.55 0.48 1" mass="0.2" {OBJECT_GROUP}/>'
        f'<geom name="{name}_handle" type="capsule" fromto="{-hx - HANDLE_STANDOFF} -0.05 0 '
        f'{-hx - HANDLE_STANDOFF} 0.05 0" size="0.008" rgba="0.2 0.2 0.22 1" mass="0.05" {OBJECT_GROUP}/>'
        + "".join(
            f'<geom name="{name}_post{i}" type="box" pos="{-hx - HANDLE_STANDOFF / 2} {y} 0" '
            f'size="{HANDLE_STANDOFF / 2} 0.005 0.005" rgba="0.2 0.2 0.22 1" mass="0.01" {OBJECT_GROUP}/>'
            for i, y in enumerate((-0.05, 0.05))
        )
        + "</body>"
    )
    return f'<body name="{name}" pos="0 0 0">{geoms}{tray}</body>'
