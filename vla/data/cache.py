"""Where a camera's pixels come from: the video files, decoded on demand, or a decoded uint8 memmap cache.

Both sources answer ``read(rows) -> (n, H, W, 3) uint8`` for global frame indices (the ``index`` column).
A frame's picture is the frame of ``files[file_of[row]]`` whose presentation time is within
``TOLERANCE_S`` of ``time_of[row]`` (``videos/<key>/from_timestamp`` + the frame's ``timestamp``), as LeRobot
looks it up; anything farther is an error, never the nearest frame.

The cache lives at ``<root>/.cache/<camera>_<H>x<W>.u8`` (raw (N, H, W, 3) uint8, C order) with a json
beside it recording the shape and the source files' sizes and mtimes; when they no longer match the dataset,
the cache is rebuilt, never reused. It takes N x H x W x 3 bytes per camera (2312 frames at 128x128: 114 MB)
and is read through the page cache, so it pays off while it fits in RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from tqdm import tqdm

from vla.data.atomic import atomic_path, write_json_atomic
from vla.data.layout import DatasetError, camera_of
from vla.data.transforms import to_chw, to_hwc

TOLERANCE_S = 1e-4  # LeRobot's tolerance between a requested and a decoded frame time
FORWARD_FRAMES = (
    3  # a target this few frames past the last decoded one is reached by decoding on, not seeking
)
MAX_OPEN = 32  # open containers per process (least recently used closed first)
CACHE_DIR = ".cache"
CACHE_VERSION = 1
WRITE_BATCH = 256  # frames resized and written to the memmap at once


@dataclass(frozen=True)
class CameraFrames:
    """Where each dataset frame's picture lives, for one camera."""

    key: str  # observation.images.<camera>
    files: tuple[Path, ...]  # the camera's video files
    file_of: np.ndarray  # (N,) int, index into files, per global frame
    time_of: np.ndarray  # (N,) float64, seconds into that file
    shape: tuple[int, int]  # (H, W) as stored, from info.json


def _rgb(
    frame: av.VideoFrame, reformatter: VideoReformatter, shape: tuple[int, int], path: Path
) -> np.ndarray:
    """The (H, W, 3) uint8 RGB picture of a decoded frame, checked against the size info.json gives."""
    if (frame.height, frame.width) != shape:
        raise DatasetError(
            path, f"frames are {frame.height}x{frame.width}, info.json says {shape[0]}x{shape[1]}"
        )
    # One reformatter per reader: frame.to_ndarray(format=...) builds a new scaler context every call,
    # which costs 7x the conversion itself on 128x128 frames.
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


class _Cursor:
    """An open video file and where its decoder stands."""

    def __init__(self, path: Path, shape: tuple[int, int]):
        try:
            self.container = av.open(str(path))
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as err:
            raise DatasetError(path, f"cannot open the video: {err}") from err
        # No decoder threads: a random frame needs one or two decodes, threads would only add latency;
        # DataLoader workers decode in parallel instead.
        self.stream.thread_type = "NONE"
        self.path, self.shape = path, shape
        self.reformatter = VideoReformatter()
        self.frames: Iterator[av.VideoFrame] | None = None
        self.last: av.VideoFrame | None = None

    def image_at(self, t: float, fps: float) -> np.ndarray:
        return _rgb(self.frame_at(t, fps), self.reformatter, self.shape, self.path)

    def frame_at(self, t: float, fps: float) -> av.VideoFrame:
        last = self.last
        if last is not None and abs(last.time - t) <= TOLERANCE_S:
            return last
        ahead = last is not None and last.time < t and t - last.time <= FORWARD_FRAMES / fps
        if not ahead:
            self._seek(t)
        frame = self._decode_to(t)
        if frame.time > t + TOLERANCE_S and not ahead:
            self._seek(0.0)  # the keyframe index misled the seek: scan from the start once
            frame = self._decode_to(t)
        if abs(frame.time - t) > TOLERANCE_S:
            raise DatasetError(
                self.path, f"no frame at timestamp {t:.6f} s (nearest {frame.time:.6f} s, tolerance 1e-4 s)"
            )
        return frame

    def _seek(self, t: float) -> None:
        offset = int((t + TOLERANCE_S) / self.stream.time_base)
        self.container.seek(max(offset, 0), stream=self.stream, backward=True, any_frame=False)
        self.frames = self.container.decode(self.stream)
        self.last = None

    def _decode_to(self, t: float) -> av.VideoFrame:
        try:
            for frame in self.frames:
                self.last = frame
                if frame.time >= t - TOLERANCE_S:
                    return frame
        except av.error.FFmpegError as err:
            raise DatasetError(self.path, f"corrupt video near timestamp {t:.6f} s: {err}") from err
        end = "no frames" if self.last is None else f"its last frame is at {self.last.time:.6f} s"
        self.frames, self.last = None, None
        raise DatasetError(self.path, f"no frame at timestamp {t:.6f} s ({end})")

    def close(self) -> None:
        self.container.close()


class VideoFrames:
    """Frames decoded on demand: seek to the keyframe at or before a frame, decode up to it.

    Containers open lazily in the process that reads (DataLoader workers included) and are never pickled.
    """

    def __init__(self, frames: CameraFrames, fps: float):
        self.frames = frames
        self.fps = fps
        self._cursors: OrderedDict[int, _Cursor] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cursors": OrderedDict()}

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(n,) global frame indices -> (n, H, W, 3) uint8, stored size."""
        if self._pid != os.getpid():  # forked: the parent's decoders are not ours to use
            self._cursors, self._pid = OrderedDict(), os.getpid()
        h, w = self.frames.shape
        out = np.empty((len(rows), h, w, 3), np.uint8)
        files, times = self.frames.file_of[rows], self.frames.time_of[rows]
        for k in np.lexsort((times, files)):  # per file, in time order: history decodes forward
            out[k] = self._cursor(int(files[k])).image_at(float(times[k]), self.fps)
        return out

    def _cursor(self, file: int) -> _Cursor:
        cursor = self._cursors.pop(file, None) or _Cursor(self.frames.files[file], self.frames.shape)
        self._cursors[file] = cursor
        if len(self._cursors) > MAX_OPEN:
            self._cursors.popitem(last=False)[1].close()
        return cursor

    def close(self) -> None:
        for cursor in self._cursors.values():
            cursor.close()
        self._cursors.clear()


class MemmapFrames:
    """Rows of an array on disk, paged in by the OS: decoded frames (N, H, W, 3) uint8, or any per-frame
    array (a pretrained trunk's maps: vla/train/features.py). ``fingerprint``: what it was built from."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype=np.uint8, fingerprint: dict | None = None):
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.fingerprint = fingerprint or {}
        self._array: np.memmap | None = None  # opened per process, never pickled

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}

    def read(self, rows: np.ndarray) -> np.ndarray:
        if self._array is None:
            self._array = np.memmap(self.path, self.dtype, mode="r", shape=self.shape)
        return np.asarray(self._array[rows])


def scan_file(path: Path, times: np.ndarray, shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """Decode a video front to back, yielding the (H, W, 3) frame at each of the ascending ``times``."""
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise DatasetError(path, f"cannot open the video: {err}") from err
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        reformatter = VideoReformatter()
        k, last = 0, None
        for frame in container.decode(stream):
            last = frame.time
            if k == len(times):
                break
            if frame.time < times[k] - TOLERANCE_S:
                continue  # a frame no dataset row points at
            if frame.time > times[k] + TOLERANCE_S:
                raise DatasetError(path, f"no frame at timestamp {times[k]:.6f} s (tolerance 1e-4 s)")
            image = _rgb(frame, reformatter, shape, path)
            while k < len(times) and abs(times[k] - frame.time) <= TOLERANCE_S:
                yield image
                k += 1
        if k < len(times):
            raise DatasetError(path, f"no frame at timestamp {times[k]:.6f} s (the video ends at {last} s)")
    except av.error.FFmpegError as err:
        raise DatasetError(path, f"corrupt video: {err}") from err
    finally:
        container.close()


def cache_paths(directory: Path, key: str, size: tuple[int, int]) -> tuple[Path, Path]:
    """The cache file and its json, e.g. ``<root>/.cache/agentview_128x128.u8``."""
    stem = Path(directory) / f"{camera_of(key)}_{size[0]}x{size[1]}"
    return stem.with_suffix(".u8"), stem.with_suffix(".json")


def fingerprint(frames: CameraFrames, root: Path, size: tuple[int, int]) -> dict:
    """What the cache was built from; any difference means the dataset changed since."""
    files = []
    for path in frames.files:
        stat = path.stat()
        files.append(
            {"path": str(path.relative_to(root)), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        )
    lookup = hashlib.sha1(np.ascontiguousarray(frames.file_of, np.int64).tobytes())
    lookup.update(np.ascontiguousarray(frames.time_of, np.float64).tobytes())
    return {
        "version": CACHE_VERSION,
        "key": frames.key,
        "shape": [len(frames.time_of), size[0], size[1], 3],
        "files": files,
        "lookup_sha1": lookup.hexdigest(),  # which file and time each frame is read from
    }


def open_cache(
    frames: CameraFrames, root: Path, directory: Path, size: tuple[int, int] | None
) -> MemmapFrames:
    """The camera's cache in ``directory`` at ``size`` (None: stored size), built first when missing or stale."""
    size = size or frames.shape
    data, info = cache_paths(directory, frames.key, size)
    want = fingerprint(frames, Path(root), size)
    shape = tuple(want["shape"])
    if not (read_record(info) == want and data.exists() and data.stat().st_size == int(np.prod(shape))):
        info.unlink(missing_ok=True)  # a half-built cache must never look current
        build_cache(frames, data, size)
        write_json_atomic(info, want)
    return MemmapFrames(data, shape, fingerprint=want)


def build_cache(frames: CameraFrames, data: Path, size: tuple[int, int]) -> None:
    """Decode every video of the camera front to back into ``data`` (N, H, W, 3) uint8."""
    shape = (len(frames.time_of), size[0], size[1], 3)
    with atomic_path(data) as tmp:
        array = np.memmap(tmp, np.uint8, mode="w+", shape=shape)
        label = f"caching {camera_of(frames.key)} {size[0]}x{size[1]}"
        with tqdm(total=shape[0], desc=label, unit="frame") as bar:
            for f, path in enumerate(frames.files):
                rows = np.flatnonzero(frames.file_of == f)
                rows = rows[np.argsort(frames.time_of[rows], kind="stable")]
                images = scan_file(path, frames.time_of[rows], frames.shape)
                for start in range(0, len(rows), WRITE_BATCH):
                    batch = rows[start : start + WRITE_BATCH]
                    stack = np.stack([next(images) for _ in batch])  # (b, H, W, 3)
                    array[batch] = stack if size == frames.shape else to_hwc(to_chw(stack, size))
                    bar.update(len(batch))
                images.close()
        array.flush()
        del array


def read_record(path: Path) -> dict | None:
    """A cache's json record, or None when missing or unreadable (the cache is then rebuilt)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no usable record: the cache is rebuilt
