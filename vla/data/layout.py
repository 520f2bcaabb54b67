"""The LeRobotDataset v3.0 layout, as LeRobot >= 0.4 writes and reads it: paths, keys, info.json.

A dataset directory::

    meta/info.json                     codebase_version "v3.0", fps, features, totals, path templates
    meta/stats.json                    per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/tasks.parquet                 task string (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, tasks, offsets, stats
    data/chunk-000/file-000.parquet            one row per frame, many episodes per file
    videos/observation.images.<camera>/chunk-000/file-000.mp4   many episodes per file, per camera

Frame i of an episode has ``timestamp = i / fps``; its video frame sits at
``videos/<key>/from_timestamp + timestamp`` in the episode's video file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILES_SIZE_MB = 100  # a data file is rolled over past this size
VIDEO_FILES_SIZE_MB = 200  # a video file is rolled over past this size

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

# Feature keys.
STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
TIMESTAMP = "timestamp"
FRAME_INDEX = "frame_index"
EPISODE_INDEX = "episode_index"
INDEX = "index"
TASK_INDEX = "task_index"
BOOKKEEPING = (TIMESTAMP, FRAME_INDEX, EPISODE_INDEX, INDEX, TASK_INDEX)

STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or inconsistent. The message names the file and the field."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        super().__init__(f"{path}: {problem}")


def image_key(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def camera_of(key: str) -> str:
    return key.removeprefix(IMAGE_PREFIX)


def video_info(height: int, width: int, fps: float, codec: str) -> dict:
    return {
        "video.height": height,
        "video.width": width,
        "video.codec": codec,
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
    }


def make_features(
    cameras: Sequence[str],
    image_size: tuple[int, int],
    state_names: Sequence[str],
    action_names: Sequence[str],
    fps: float,
    codec: str,
) -> dict[str, dict]:
    """The ``features`` map of info.json for a robot with these cameras, state and action."""
    height, width = image_size
    features: dict[str, dict] = {}
    for camera in cameras:
        features[image_key(camera)] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": video_info(height, width, fps, codec),
        }
    features[STATE] = {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)}
    features[ACTION] = {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)}
    features[TIMESTAMP] = {"dtype": "float32", "shape": [1], "names": None}
    for key in (FRAME_INDEX, EPISODE_INDEX, INDEX, TASK_INDEX):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def video_keys(features: dict[str, dict]) -> list[str]:
    return [key for key, spec in features.items() if spec.get("dtype") == "video"]


def empty_info(features: dict[str, dict], fps: float, robot_type: str | None) -> dict:
    """info.json of a dataset with no episodes yet."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if video_keys(features) else None,
        "features": features,
    }
