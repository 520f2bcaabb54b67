"""The wire format: msgpack frames in which numpy values travel as tagged maps, never as pickles.

The encoding is openpi's (so its ``openpi-client`` talks to ``vla-serve`` unchanged):

    numpy array   {b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str, b"shape": [..]}
    numpy scalar  {b"__npgeneric__": True, b"data": the Python value, b"dtype": dtype.str}

Everything else is plain msgpack (maps, lists, str, bytes, int, float, bool, None). Object, void and complex
dtypes are refused both ways: they are how a pickle would sneak in, and no policy needs them. Decoding
checks that the bytes match the dtype and shape, so a malformed frame is an error naming the problem
(``WireError``), never a garbage array.

Decoding is bounded, because it runs on a server's event loop: a frame's maps and lists, counted with their
entries, number at most ``MAX_ENTRIES``, and none has more than ``MAX_CONTAINER_LEN`` entries (an
observation has about ten maps and lists of a few entries each; array data travels as bytes). msgpack builds
a Python object for each, so without the bounds a 16 MiB frame of empty maps took 5-7 s to decode, stalling
every client and health check. Error texts that may quote a frame are cut to ``MAX_ERROR_CHARS``
(``bounded``).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

NDARRAY, NPGENERIC = b"__ndarray__", b"__npgeneric__"
REFUSED_KINDS = ("O", "V", "c")  # object, void (structured), complex
MAX_ENTRIES = 16_384  # maps and lists in one frame, each counted with its entries (decodes in ~10 ms)
MAX_CONTAINER_LEN = 1024  # entries of one map or list (checked before msgpack builds it)
MAX_ERROR_CHARS = 512  # an error text quoting a frame is cut to this many characters
MARKER_CHARS = 48  # room kept for the "... [N characters cut]" marker
TOO_MANY = (
    f"a frame may hold at most {MAX_ENTRIES} maps, lists and entries of them, and no map or list of over "
    f"{MAX_CONTAINER_LEN} entries"
)


class WireError(ValueError):
    """A frame that is not valid msgpack or holds a malformed or refused numpy value."""


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic) and value.dtype.kind in REFUSED_KINDS:
        raise WireError(f"cannot send numpy dtype {value.dtype} (object, structured and complex are refused)")
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {
            NDARRAY: True,
            b"data": array.tobytes(),
            b"dtype": array.dtype.str,
            b"shape": list(array.shape),
        }
    if isinstance(value, np.generic):
        return {NPGENERIC: True, b"data": value.item(), b"dtype": value.dtype.str}
    raise TypeError(f"cannot send a {type(value).__name__} over the wire")


def _dtype(code) -> np.dtype:
    try:
        dtype = np.dtype(code.decode() if isinstance(code, bytes) else str(code))
    except TypeError as error:
        raise WireError(bounded(f"unknown numpy dtype {code!r}")) from error
    if dtype.kind in REFUSED_KINDS:
        raise WireError(f"refused numpy dtype {dtype} (object, structured and complex are never decoded)")
    return dtype


def _decode(item: dict) -> Any:
    if NDARRAY in item:
        dtype = _dtype(item.get(b"dtype"))
        shape, data = item.get(b"shape"), item.get(b"data")
        if not isinstance(data, bytes) or not isinstance(shape, list | tuple):
            raise WireError("a numpy array needs bytes 'data' and a list 'shape'")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError(bounded(f"bad array shape {shape!r}"))
        expected = math.prod(shape) * dtype.itemsize  # Python ints: a huge declared shape cannot wrap around
        if len(data) != expected:
            raise WireError(
                f"array of shape {tuple(shape)} and dtype {dtype} needs {expected} bytes, got {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if NPGENERIC in item:
        dtype = _dtype(item.get(b"dtype"))
        try:
            return dtype.type(item.get(b"data"))
        except (TypeError, ValueError, OverflowError) as error:  # OverflowError: 1000 as an int8
            raise WireError(bounded(f"bad numpy scalar of dtype {dtype}: {error}")) from error
    return item


def pack(value: Any) -> bytes:
    """One frame: ``value`` (dicts, lists, str, numbers, numpy arrays and scalars) as msgpack bytes."""
    return msgpack.packb(value, default=_encode, use_bin_type=True)


def unpack(frame: bytes) -> Any:
    """The value of one frame; ``WireError`` for anything that is not a well-formed frame, or that is over
    the bounds (``MAX_ENTRIES``, ``MAX_CONTAINER_LEN``).

    Map keys arrive as str when the sender wrote str (ours and openpi's), numpy values as read-only arrays
    over the frame's bytes (copy one before writing to it)."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise WireError(f"a frame must be bytes, got {type(frame).__name__}")
    left = [MAX_ENTRIES]

    def counted(container):
        left[0] -= 1 + len(container)
        if left[0] < 0:
            raise WireError(TOO_MANY)
        return container

    try:
        return msgpack.unpackb(
            frame,
            object_hook=lambda item: _decode(counted(item)),
            list_hook=counted,
            raw=False,
            strict_map_key=False,
            max_map_len=MAX_CONTAINER_LEN,
            max_array_len=MAX_CONTAINER_LEN,
        )
    except WireError:
        raise
    except ValueError as error:
        if "exceeds max_" in str(error):  # msgpack read a map or list header over MAX_CONTAINER_LEN
            raise WireError(TOO_MANY) from error
        raise WireError(bounded(f"not a msgpack frame: {error}")) from error
    except (TypeError, msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException) as error:
        raise WireError(bounded(f"not a msgpack frame: {error}")) from error


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut: an error that quotes a frame (a key, a
    dtype, a list of indices) must not send or log megabytes back."""
    if len(text) <= limit:
        return text
    kept = max(0, limit - MARKER_CHARS)
    return f"{text[:kept]}... [{len(text) - kept} characters cut]"
