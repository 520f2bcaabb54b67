"""Headless OpenGL backend selection for MuJoCo rendering.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported, so this runs before
that import. On Linux with ``MUJOCO_GL`` unset we choose EGL (works without a GPU through Mesa's llvmpipe) and
fall back to OSMesa; a user's own setting is always respected.
"""

from __future__ import annotations

import ctypes.util
import os
import platform

# Debian/Ubuntu packages that provide each backend's library.
_BACKEND_LIBRARY = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}


def _loadable(library: str) -> bool:
    path = ctypes.util.find_library(library)
    if path is None:
        return False
    try:
        ctypes.CDLL(path)
    except OSError:
        return False
    return True


def choose_backend() -> str | None:
    """Set ``MUJOCO_GL`` for headless rendering if the user has not; return the backend in use."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if platform.system() != "Linux":
        return None  # macOS and Windows render through their native contexts.
    for backend, (library, _) in _BACKEND_LIBRARY.items():
        if _loadable(library):
            os.environ["MUJOCO_GL"] = backend
            return backend
    return None


def missing_backend_message(error: BaseException) -> str:
    """The one clear error shown when no renderer can be created."""
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    packages = " or ".join(pkg for _, pkg in _BACKEND_LIBRARY.values())
    return (
        f"Could not create a MuJoCo renderer (MUJOCO_GL={backend}): {error}. Headless rendering needs EGL or "
        f"OSMesa: install the system package {packages} (for example `sudo apt-get install libegl1`), "
        "or set MUJOCO_GL to a backend that works on this machine."
    )
