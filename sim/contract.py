"""The public data contract of every vla-stack environment: observation keys, state layout, action layout.

Observation::

    {
        "images": {camera: uint8[H, W, 3]},   # upright RGB, one entry per configured camera
        "state": float32[17],                 # STATE_NAMES, in this order
        "instruction": str,                   # the episode's language instruction
    }

State: TCP position (m, world frame), TCP orientation as the first two columns of its rotation matrix
(a continuous 6-D representation, Zhou et al. 2019), gripper opening (m between the finger pads, 0 closed,
0.08 open) and the 7 arm joint positions (rad).

Action: float[7] in [-1, 1]: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``; see ``sim.controller`` for the
scaling. Gripper: -1 = open, +1 = close, everywhere in vla-stack.
"""

from __future__ import annotations

import numpy as np

OBS_IMAGES = "images"
OBS_STATE = "state"
OBS_INSTRUCTION = "instruction"

CAMERAS = ("agentview", "wrist")

STATE_NAMES = (
    *(f"tcp_pos_{axis}" for axis in "xyz"),
    *(f"tcp_rot6d_{i}" for i in range(6)),
    "gripper_opening",
    *(f"joint{i}" for i in range(1, 8)),
)
STATE_DIM = len(STATE_NAMES)

ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
ACTION_DIM = len(ACTION_NAMES)
# Optional key of a policy's infer() output: (K, 7) actions a demonstration should record for the executed
# ``actions``. The scripted experts with noise put their intended (noise-free) actions here (DART).
LABEL_ACTIONS = "label_actions"
GRIPPER_OPEN = -1.0
GRIPPER_CLOSE = 1.0


def validate_action(action, names: tuple[str, ...] = ACTION_NAMES) -> np.ndarray:
    """Return ``action`` as float64 (len(names),), or raise ``ValueError`` naming what is wrong with it.
    ``names``: the action's dimensions (this contract's by default; other suites pass their own)."""
    array = np.asarray(action)
    dim = len(names)
    if array.dtype.kind != "f":
        raise ValueError(f"action must be a floating-point array, got dtype {array.dtype}")
    if array.shape != (dim,):
        hint = f" (a policy's (K, {dim}) chunk must be executed one row at a time)" if array.ndim == 2 else ""
        raise ValueError(f"action must have shape ({dim},), got {array.shape}{hint}")
    bad = ~np.isfinite(array)
    if bad.any():
        bad_names = [names[i] for i in np.flatnonzero(bad)]
        raise ValueError(f"action contains NaN or inf in {bad_names}: {array.tolist()}")
    outside = np.abs(array) > 1.0 + 1e-6
    if outside.any():
        outside_names = [names[i] for i in np.flatnonzero(outside)]
        raise ValueError(f"action must lie in [-1, 1]; {outside_names} outside: {array.tolist()}")
    return array.astype(np.float64)
