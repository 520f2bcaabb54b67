"""``vla-deploy robot=franka``: the arm's options and how the runtime opens it (``policies.runtime.franka``).

Kept apart from ``deploy.py`` so that the simulated path reads without the hardware's details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.runtime.franka import GRIPPER_MODES, INSTALL_HINT, JOINT_LIMITS


@dataclass
class FrankaOptions:
    """robot=franka: a Panda or FR3 with the Franka Hand through franky (policies.runtime.franka)."""

    host: str | None = None  # the robot's FCI address, e.g. 172.16.0.2 (required)
    model: str = "panda"  # panda | fr3: the joint limits
    cameras: Any = None  # {policy camera name: OpenCV device index or path}, e.g. {agentview: 0, wrist: 2}
    dynamics_factor: float = 0.1  # share of the arm's velocity, acceleration and jerk limits, in (0, 1]
    gripper: str = "binary"  # binary: > 0 grasps, < 0 opens | width: the action sets the opening
    grasp_force: float = 20.0  # N, gripper=binary
    tcp_offset: float | None = None  # m from the flange to the TCP along its z; null: the Franka Hand's

    def __post_init__(self):
        if not isinstance(self.cameras, Mapping | None):
            raise ValueError(f"franka.cameras must map camera names to devices, got {self.cameras!r}")
        self.cameras = dict(self.cameras or {})
        if self.model not in JOINT_LIMITS:
            raise ValueError(f"franka.model must be one of {sorted(JOINT_LIMITS)}, got {self.model!r}")
        if self.gripper not in GRIPPER_MODES:
            raise ValueError(f"franka.gripper must be one of {GRIPPER_MODES}, got {self.gripper!r}")
        if not 0 < self.dynamics_factor <= 1:
            raise ValueError(f"franka.dynamics_factor must be in (0, 1], got {self.dynamics_factor}")
        if not self.grasp_force > 0 or (self.tcp_offset is not None and not self.tcp_offset > 0):
            raise ValueError("franka.grasp_force and franka.tcp_offset must be > 0")
        for name, source in self.cameras.items():  # a bool is an int to Python: `wrist=true` is no device 1
            if not ((isinstance(source, str) and source.strip()) or (type(source) is int and source >= 0)):
                raise ValueError(
                    f"franka.cameras.{name} must be an OpenCV device index or path, got {source!r}"
                )


def make_franka(options: FrankaOptions, dry_run: bool, reads: tuple[str, ...], image_size: tuple[int, int]):
    """FrankaRobot with ``franka.cameras`` opened through OpenCV at ``image_size``; ``reads``: the policy's
    cameras, each of which must be given. A safety dry run keeps the arm still, homing included."""
    from policies.runtime.camera import OpenCVCamera
    from policies.runtime.franka import FrankaRobot, hand_tcp_in_flange

    missing = [name for name in reads if name not in options.cameras]
    if missing:
        raise ValueError(
            f"the policy reads cameras {list(reads)} and franka.cameras gives none for {missing}: add them, "
            f"e.g. franka.cameras={{{missing[0]}: 0}} (an OpenCV device index or path)"
        )
    cameras = {}
    try:
        for name, source in options.cameras.items():
            cameras[name] = OpenCVCamera(source, size=image_size)
        tcp = None if options.tcp_offset is None else hand_tcp_in_flange(options.tcp_offset)
        return FrankaRobot(
            options.host,
            cameras,
            model=options.model,
            dynamics_factor=options.dynamics_factor,
            tcp_in_flange=tcp,
            gripper_mode=options.gripper,
            grasp_force=options.grasp_force,
            dry_run=dry_run,
        )
    except BaseException:
        close_cameras(cameras)  # a device left open stays busy for the next try
        raise


def check_franky() -> None:
    """franky's install command before a policy is loaded or a camera opened, not after."""
    try:
        import franky  # noqa: F401
    except ImportError as err:
        raise ImportError(f"robot=franka needs franky (libfranka's Python bindings): {INSTALL_HINT}") from err


def close_cameras(cameras) -> None:
    """Release the devices of ``{name: camera}`` (a simulated robot's ``cameras`` are names: nothing to do)."""
    if isinstance(cameras, dict):
        for camera in cameras.values():
            close = getattr(camera, "close", None)
            if close is not None:
                close()
