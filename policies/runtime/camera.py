"""Cameras for a real robot: anything with ``read() -> uint8 (H, W, 3)`` RGB, upright, as in the simulator.

A robot adapter takes a mapping ``{name: camera}`` whose names are the policy's camera names
(``sim.contract.CAMERAS``: ``agentview``, ``wrist``). ``OpenCVCamera`` covers USB webcams and video files;
other cameras (RealSense, ZED, ...) only need a ``read`` method. OpenCV is imported when an ``OpenCVCamera``
is opened, so the stack does not depend on it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Camera(Protocol):
    def read(self) -> np.ndarray:
        """The newest frame: uint8 (H, W, 3), RGB, upright."""


def check_frame(name: str, frame) -> np.ndarray:
    """Return ``frame`` if it is a uint8 (H, W, 3) array, else raise ``ValueError`` naming the camera."""
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"camera {name!r} returned {array.dtype} {array.shape}; a camera's read() must return "
            "uint8 (H, W, 3) RGB"
        )
    return array


class OpenCVCamera:
    """A camera read through ``cv2.VideoCapture`` (a device index such as 0, or a path/URL).

    ``size=(H, W)`` resizes every frame (area interpolation), e.g. to the image size the policy was trained
    on; ``None`` keeps the camera's own size. Frames are converted from OpenCV's BGR to RGB.
    """

    def __init__(self, source: int | str = 0, size: tuple[int, int] | None = None):
        try:
            import cv2
        except ImportError as err:
            raise ImportError(
                "OpenCVCamera needs OpenCV: pip install opencv-python-headless (or pass your own camera "
                "object with a read() method)"
            ) from err
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be (H, W) with both >= 1, got {size}")
        self._cv2 = cv2
        self.source = source
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self._capture = cv2.VideoCapture(source)
        if not self._capture.isOpened():
            raise RuntimeError(f"OpenCV could not open camera {source!r}")
        # A policy must see the scene as it is now; OpenCV's default buffer hands out frames several control
        # steps old. Not every backend honours this setting.
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def read(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise RuntimeError(f"camera {self.source!r} returned no frame (unplugged, or the stream ended?)")
        frame = self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)
        if self.size is not None and frame.shape[:2] != self.size:
            height, width = self.size
            frame = self._cv2.resize(frame, (width, height), interpolation=self._cv2.INTER_AREA)
        return frame

    def close(self) -> None:
        self._capture.release()
