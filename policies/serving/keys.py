"""Which observation keys ``vla-serve`` accepts, and how a decoded frame becomes a ``sim.contract`` observation.

A frame is a map. Its keys may be ours or openpi's; the key map renames openpi's to ours:

    frame key                   observation field
    images/<camera>             images[<camera>]      uint8 (H, W, 3)   (flattened, e.g. images/agentview)
    images: {camera: image}     images[<camera>]      uint8 (H, W, 3)   (nested, as sim.contract has it)
    state                       state                 float (S,)        finite; sent as float32 or float64
    instruction                 instruction           str               non-empty
    observation/image           images[agentview]     (DEFAULT_KEY_MAP; vla-serve's key_map overrides it)
    observation/wrist_image     images[wrist]
    observation/state           state
    prompt                      instruction

A key that is neither ours, nor in the key map, nor one the policy declares (``passthrough``: the scripted
expert's privileged actions) is an error that names it: a typo must not silently drop a camera. So are a
camera given twice, a camera the policy reads but the frame lacks, and a value of the wrong type, dtype or
shape. Every check here is cheap and runs before the observation joins a batch, so one client's bad frame
fails that client alone; the policy's own checks (``VLAPolicy``'s) still run after these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from sim.contract import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE

IMAGE_PREFIX = OBS_IMAGES + "/"
DEFAULT_KEY_MAP = {
    "observation/image": "images/agentview",
    "observation/wrist_image": "images/wrist",
    "observation/state": OBS_STATE,
    "prompt": OBS_INSTRUCTION,
}
MAX_INSTRUCTION_CHARS = (
    10_000  # far above any real instruction; stops a megabyte "prompt" reaching a tokenizer
)
SHOWN_INDICES = 10  # indices of NaN or inf state entries an error lists


class ObservationError(ValueError):
    """A frame that is not an observation this server can answer; the message names the key and the problem."""


def check_key_map(key_map: Mapping | None) -> dict[str, str]:
    """``key_map`` (None: ``DEFAULT_KEY_MAP``) as {client key: our key}; each target must be ``state``,
    ``instruction`` or ``images/<camera>``."""
    key_map = DEFAULT_KEY_MAP if key_map is None else key_map
    if not isinstance(key_map, Mapping):
        raise ValueError(f"key_map must map client keys to observation keys, got {key_map!r}")
    checked = {}
    for source, target in key_map.items():
        source, target = str(source), str(target)
        if target not in (OBS_STATE, OBS_INSTRUCTION) and not _camera_key(target):
            raise ValueError(
                f"key_map: '{source}' maps to '{target}'; a target must be '{OBS_STATE}', "
                f"'{OBS_INSTRUCTION}' or '{IMAGE_PREFIX}<camera>'"
            )
        checked[source] = target
    return checked


def to_observation(
    frame,
    key_map: Mapping[str, str],
    cameras: Iterable[str],
    state_dim: int | None,
    passthrough: Iterable[str] = (),
) -> dict:
    """The observation ``{"images": {camera: uint8 (H, W, 3)}, "state": float32 (S,), "instruction": str}``
    (plus any ``passthrough`` keys) in ``frame``, or ``ObservationError`` naming what is wrong.

    ``cameras``: those the policy reads (each must be present; others are kept, unused). ``state_dim``:
    the length the state must have (None: any)."""
    if not isinstance(frame, dict):
        raise ObservationError(f"a frame must be a map of observation keys, got {type(frame).__name__}")
    images, fields = {}, {}
    passthrough = set(passthrough)
    for key, value in frame.items():
        if not isinstance(key, str):
            raise ObservationError(f"observation keys must be strings, got {key!r}")
        target = key_map.get(key, key)
        if target == OBS_IMAGES:
            if not isinstance(value, dict):
                raise ObservationError(f"'{OBS_IMAGES}' must map camera names to images, got {_kind(value)}")
            for camera, image in value.items():
                _add_image(images, str(camera), image, f"{OBS_IMAGES}[{camera!r}]")
        elif _camera_key(target):
            _add_image(images, target[len(IMAGE_PREFIX) :], value, key)
        elif target in (OBS_STATE, OBS_INSTRUCTION) or key in passthrough:
            if target in fields:
                raise ObservationError(f"'{key}' gives '{target}' a second time")
            fields[target] = value
        else:
            raise ObservationError(f"unknown observation key '{key}'; {_accepted(key_map, passthrough)}")
    for camera in cameras:
        if camera not in images:
            raise ObservationError(
                f"the observation lacks camera '{camera}' (it has {sorted(images)}); send it as "
                f"'{IMAGE_PREFIX}{camera}'{_mapped_from(key_map, IMAGE_PREFIX + camera)}"
            )
    observation = {key: value for key, value in fields.items() if key in passthrough}
    observation[OBS_IMAGES] = images
    observation[OBS_STATE] = _state(fields, state_dim, key_map)
    observation[OBS_INSTRUCTION] = _instruction(fields, key_map)
    for key in passthrough:
        if key in observation:
            _numeric(observation[key], key)
    return observation


def _add_image(images: dict, camera: str, image, key: str) -> None:
    if not camera:
        raise ObservationError(f"'{key}' names no camera")
    if camera in images:
        raise ObservationError(f"camera '{camera}' is given twice (the second time as '{key}')")
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[-1] != 3
    ):
        raise ObservationError(f"'{key}' must be a uint8 (H, W, 3) image, got {_kind(image)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ObservationError(f"'{key}' is an empty image {image.shape}")
    images[camera] = image


def _state(fields: dict, state_dim: int | None, key_map: Mapping[str, str]) -> np.ndarray:
    if OBS_STATE not in fields:
        raise ObservationError(f"the observation lacks '{OBS_STATE}'{_mapped_from(key_map, OBS_STATE)}")
    state = fields[OBS_STATE]
    if not isinstance(state, np.ndarray) or state.dtype.kind != "f" or state.ndim != 1:
        raise ObservationError(f"'{OBS_STATE}' must be a 1-D float array, got {_kind(state)}")
    if state_dim is not None and state.shape != (state_dim,):
        raise ObservationError(f"'{OBS_STATE}' must have {state_dim} values, got shape {state.shape}")
    if not np.isfinite(state).all():
        bad = np.flatnonzero(~np.isfinite(state))
        shown = ", ".join(map(str, bad[:SHOWN_INDICES])) + (", ..." if len(bad) > SHOWN_INDICES else "")
        raise ObservationError(f"'{OBS_STATE}' holds NaN or inf at {len(bad)} indices: [{shown}]")
    return state.astype(np.float32)


def _instruction(fields: dict, key_map: Mapping[str, str]) -> str:
    text = fields.get(OBS_INSTRUCTION)
    if not isinstance(text, str) or not text.strip():
        where = _mapped_from(key_map, OBS_INSTRUCTION)
        raise ObservationError(f"'{OBS_INSTRUCTION}'{where} must be a non-empty string, got {_kind(text)}")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise ObservationError(
            f"'{OBS_INSTRUCTION}' has {len(text)} characters (at most {MAX_INSTRUCTION_CHARS})"
        )
    return text


def _numeric(value, key: str) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ObservationError(f"'{key}' must be a numeric array, got {_kind(value)}")


def _camera_key(key: str) -> bool:
    return key.startswith(IMAGE_PREFIX) and len(key) > len(IMAGE_PREFIX)


def _mapped_from(key_map: Mapping[str, str], target: str) -> str:
    sources = [source for source, mapped in key_map.items() if mapped == target]
    return f" (or {', '.join(repr(s) for s in sources)})" if sources else ""


def _accepted(key_map: Mapping[str, str], passthrough: set[str]) -> str:
    ours = [f"{IMAGE_PREFIX}<camera>", OBS_IMAGES, OBS_STATE, OBS_INSTRUCTION, *sorted(passthrough)]
    return f"accepted: {ours} and the key map's {sorted(key_map)}"


def _kind(value) -> str:
    """A short description of a value for an error message (never its contents: it may be megabytes)."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    if isinstance(value, str):
        return f"a string of {len(value)} characters" if value else "an empty string"
    return "nothing" if value is None else f"a {type(value).__name__}"
