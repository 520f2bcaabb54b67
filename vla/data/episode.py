"""One recorded episode, as handed to ``DatasetWriter.add_episode``, and its checks and derived rows.

Data contract of an episode of T frames::

    task     str                          the language instruction
    state    (T, S) float32               observation.state
    action   (T, A) float32               action
    videos   {camera: EncodedVideo}       T frames each, already encoded (e.g. by a worker process)
    extra    {key: bool|int|float|str}    stored as the episode column ``vla/<key>``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla.data.layout import (
    ACTION,
    EPISODE_INDEX,
    FRAME_INDEX,
    INDEX,
    STATE,
    TASK_INDEX,
    TIMESTAMP,
    camera_of,
    image_key,
    video_keys,
)
from vla.data.stats import check_finite
from vla.data.video import EncodedVideo

EXTRA_PREFIX = "vla/"  # extra per-episode columns: vla/<key>
# (3, 256) pixel counts per video key: exact image stats of the dataset are sums of these, episode by episode.
HISTOGRAM_PREFIX = "vla/pixel_histogram/"
EXTRA_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Episode:
    task: str
    state: np.ndarray  # (T, S) float32
    action: np.ndarray  # (T, A) float32
    videos: dict[str, EncodedVideo]  # camera name (e.g. "agentview") -> its encoded frames
    extra: dict[str, bool | int | float | str] = field(default_factory=dict)


def _matrix(values, feature: str, width: int) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"feature '{feature}' must be numeric, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"feature '{feature}' must have shape (T, {width}), got {array.shape}")
    array = array.astype(np.float32)
    check_finite(array, feature, unit="frame")
    return array


def _check_videos(videos: dict[str, EncodedVideo], features: dict, fps: float, length: int) -> None:
    cameras = {camera_of(key) for key in video_keys(features)}
    if set(videos) != cameras:
        raise ValueError(
            f"episode videos are for cameras {sorted(videos)}, the dataset has {sorted(cameras)}"
        )
    for camera, video in videos.items():
        key = image_key(camera)
        height, width, _ = features[key]["shape"]
        codec = features[key].get("info", {}).get("video.codec")
        if (video.height, video.width) != (height, width):
            raise ValueError(
                f"video '{key}' is {video.height}x{video.width}, the dataset's is {height}x{width}"
            )
        if video.num_frames != length:
            raise ValueError(f"video '{key}' has {video.num_frames} frames, state and action have {length}")
        if video.codec != codec or video.fps != fps:
            raise ValueError(
                f"video '{key}' is {video.codec} at {video.fps} fps, the dataset stores {codec} at {fps} fps"
            )
        if not Path(video.path).is_file():
            raise ValueError(f"video '{key}': file {video.path} not found")


def _check_extra(extra: dict, schema: dict[str, type] | None) -> None:
    for key, value in extra.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"extra key {key!r} must be a non-empty string without '/'")
        if not isinstance(value, EXTRA_TYPES):
            raise ValueError(f"extra '{key}' must be bool, int, float or str, got {type(value).__name__}")
    if schema is not None:
        given = {key: type(value) for key, value in extra.items()}
        if given != schema:
            raise ValueError(f"extra columns {given} differ from those of earlier episodes {schema}")


def checked_episode(ep: Episode, features: dict, fps: float, extra_schema: dict | None) -> Episode:
    """``ep`` with float32 arrays, or a ValueError naming the feature and the problem."""
    if not isinstance(ep.task, str) or not ep.task.strip():
        raise ValueError(f"episode task must be a non-empty instruction string, got {ep.task!r}")
    state = _matrix(ep.state, STATE, features[STATE]["shape"][0])
    action = _matrix(ep.action, ACTION, features[ACTION]["shape"][0])
    if len(state) == 0:
        raise ValueError("episode is empty: state and action have no frames")
    if len(state) != len(action):
        raise ValueError(f"'{STATE}' has {len(state)} frames but '{ACTION}' has {len(action)}")
    _check_videos(ep.videos, features, fps, len(state))
    _check_extra(ep.extra, extra_schema)
    return Episode(ep.task, state, action, dict(ep.videos), dict(ep.extra))


def frame_columns(
    ep: Episode, episode_index: int, task_index: int, start: int, fps: float
) -> dict[str, np.ndarray]:
    """The data-parquet columns of ``ep``, whose first frame has the global index ``start``."""
    length = len(ep.state)
    frame_index = np.arange(length, dtype=np.int64)
    return {
        STATE: ep.state,  # (T, S) float32
        ACTION: ep.action,  # (T, A) float32
        TIMESTAMP: (frame_index / fps).astype(np.float32),  # (T,)
        FRAME_INDEX: frame_index,
        EPISODE_INDEX: np.full(length, episode_index, dtype=np.int64),
        INDEX: start + frame_index,
        TASK_INDEX: np.full(length, task_index, dtype=np.int64),
    }
