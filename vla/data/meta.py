"""Loading and validating the metadata of a LeRobotDataset v3.0 directory (``meta/``).

``load_meta(root)`` reads info.json, stats.json, tasks.parquet and the episode rows, checks them and returns a
frozen ``DatasetMeta``. Every problem is a ``DatasetError`` naming the file and the field.

info.json is the commit point of ``DatasetWriter``: rows of ``meta/episodes`` with an episode_index at or past
``total_episodes`` belong to an episode whose commit was interrupted and are not part of the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla.data.hub import resolve_dataset
from vla.data.layout import (
    CODEBASE_VERSION,
    DATA_PATH,
    INFO_PATH,
    STAT_NAMES,
    STATS_PATH,
    TASK_INDEX,
    TASKS_PATH,
    DatasetError,
    video_keys,
)

REQUIRED_INFO_KEYS = (
    "codebase_version",
    "fps",
    "features",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "data_path",
)
# Columns of a meta/episodes row (plus the per-camera VIDEO_EPISODE_COLUMNS) that readers rely on.
EPISODE_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
    "meta/episodes/chunk_index",
    "meta/episodes/file_index",
)
VIDEO_EPISODE_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
# pandas writes the task strings of tasks.parquet as its (unnamed) index; LeRobot reads them back as the index.
TASK_STRING_COLUMNS = ("__index_level_0__", "task")
# Per-episode statistics (and vla-stack's pixel histograms) are bulky and only the writer needs them; like
# LeRobot's own loader, load_meta leaves them out of ``DatasetMeta.episodes``.
BULKY_EPISODE_PREFIXES = ("stats/", "vla/pixel_histogram/")
V21_CONVERTER = "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<repo_id>"


def video_episode_column(video_key: str, field: str) -> str:
    return f"videos/{video_key}/{field}"


@dataclass(frozen=True)
class DatasetMeta:
    root: Path
    info: dict
    stats: dict[str, dict[str, np.ndarray]]
    tasks: list[str]  # task_index -> task string
    episodes: list[dict]  # one row per committed episode, sorted by episode_index; no stats/ columns

    @property
    def fps(self) -> float:
        return self.info["fps"]

    @property
    def features(self) -> dict[str, dict]:
        return self.info["features"]

    @property
    def camera_keys(self) -> list[str]:
        """The video features, e.g. ``observation.images.agentview``."""
        return video_keys(self.features)

    @property
    def total_frames(self) -> int:
        return self.info["total_frames"]

    @property
    def total_episodes(self) -> int:
        return self.info["total_episodes"]

    def data_file(self, chunk_index: int, file_index: int) -> Path:
        template = self.info.get("data_path") or DATA_PATH
        return self.root / template.format(chunk_index=chunk_index, file_index=file_index)

    def data_files(self) -> list[Path]:
        """The data parquet files holding the committed episodes, in order."""
        pairs = sorted({(ep["data/chunk_index"], ep["data/file_index"]) for ep in self.episodes})
        return [self.data_file(chunk, file) for chunk, file in pairs]

    def video_file(self, key: str, chunk_index: int, file_index: int) -> Path:
        template = self.info.get("video_path")
        if not template:
            raise DatasetError(
                self.root / INFO_PATH, f"no 'video_path', but video feature '{key}' was asked for"
            )
        return self.root / template.format(video_key=key, chunk_index=chunk_index, file_index=file_index)

    def require_stats(self, feature: str, names: tuple[str, ...] = STAT_NAMES) -> dict[str, np.ndarray]:
        """The statistics ``names`` of ``feature``; a missing one is an error, never a silent identity."""
        path = self.root / STATS_PATH
        if feature not in self.stats:
            raise DatasetError(path, f"missing stats for feature '{feature}'")
        found = self.stats[feature]
        for name in names:
            if name not in found:
                raise DatasetError(path, f"missing stats key '{name}' for feature '{feature}'")
            if not np.all(np.isfinite(found[name])):
                raise DatasetError(path, f"stats key '{name}' of feature '{feature}' is not finite")
        return {name: found[name] for name in names}


def read_json(path: Path):
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"corrupt JSON ({err})") from err


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(path, f"corrupt parquet ({err})") from err


def check_info(info, path: Path) -> dict:
    if not isinstance(info, dict):
        raise DatasetError(path, "expected a JSON object")
    version = info.get("codebase_version")
    if isinstance(version, str) and version.startswith("v2"):
        raise DatasetError(
            path,
            f"codebase_version is '{version}': this is a LeRobotDataset v2.x dataset (one file per episode, "
            f"jsonl metadata); convert it to v3.0 with LeRobot's converter: {V21_CONVERTER}",
        )
    if version != CODEBASE_VERSION:
        raise DatasetError(path, f"codebase_version is {version!r}, expected '{CODEBASE_VERSION}'")
    for key in REQUIRED_INFO_KEYS:
        if key not in info:
            raise DatasetError(path, f"missing required key '{key}'")
    features = info["features"]
    if not isinstance(features, dict) or not features:
        raise DatasetError(path, "'features' must be a non-empty object")
    for name, spec in features.items():
        for field in ("dtype", "shape"):
            if not isinstance(spec, dict) or field not in spec:
                raise DatasetError(path, f"feature '{name}' lacks '{field}'")
        if not isinstance(spec["shape"], list) or not all(isinstance(n, int) for n in spec["shape"]):
            raise DatasetError(path, f"feature '{name}' has shape {spec['shape']!r}, expected a list of ints")
    for key in ("total_episodes", "total_frames", "total_tasks"):
        if not isinstance(info[key], int) or info[key] < 0:
            raise DatasetError(path, f"'{key}' must be a non-negative integer, got {info[key]!r}")
    if not (isinstance(info["fps"], int | float) and info["fps"] > 0):
        raise DatasetError(path, f"'fps' must be a positive number, got {info['fps']!r}")
    return info


def load_stats(path: Path) -> dict[str, dict[str, np.ndarray]]:
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DatasetError(path, "expected a JSON object of feature -> stats")
    stats: dict[str, dict[str, np.ndarray]] = {}
    for feature, values in raw.items():
        if not isinstance(values, dict):
            raise DatasetError(path, f"stats of feature '{feature}' must be an object")
        stats[feature] = {name: np.asarray(value) for name, value in values.items()}
    return stats


def load_tasks(path: Path, total_tasks: int) -> list[str]:
    table = read_parquet(path)
    if TASK_INDEX not in table.column_names:
        raise DatasetError(path, f"missing column '{TASK_INDEX}'")
    string_column = next((c for c in TASK_STRING_COLUMNS if c in table.column_names), None)
    if string_column is None:
        raise DatasetError(path, f"missing the task string column (one of {list(TASK_STRING_COLUMNS)})")
    pairs = sorted(
        zip(table.column(TASK_INDEX).to_pylist(), table.column(string_column).to_pylist(), strict=True)
    )
    committed = [(index, task) for index, task in pairs if index < total_tasks]
    if [index for index, _ in committed] != list(range(total_tasks)):
        raise DatasetError(path, f"'{TASK_INDEX}' must run 0..{total_tasks - 1} (info.json total_tasks)")
    return [task for _, task in committed]


def episode_files(root: Path) -> list[Path]:
    # EPISODES_PATH with any chunk and file index
    return sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))


def is_bulky(column: str) -> bool:
    return column.startswith(BULKY_EPISODE_PREFIXES)


def load_episodes(root: Path, info: dict) -> list[dict]:
    """The committed episode rows (episode_index < total_episodes), without the bulky stats columns."""
    total = info["total_episodes"]
    files = episode_files(root)
    if total and not files:
        raise DatasetError(root / "meta/episodes", f"no episode files, but info.json says {total} episodes")
    required = list(EPISODE_COLUMNS)
    for key in video_keys(info["features"]):
        required += [video_episode_column(key, field) for field in VIDEO_EPISODE_COLUMNS]
    rows: list[dict] = []
    for path in files:
        table = read_parquet(path)
        for column in required:
            if column not in table.column_names:
                raise DatasetError(path, f"missing column '{column}'")
        rows += table.select([name for name in table.column_names if not is_bulky(name)]).to_pylist()
    rows = sorted((row for row in rows if row["episode_index"] < total), key=lambda r: r["episode_index"])
    if [row["episode_index"] for row in rows] != list(range(total)):
        raise DatasetError(root / "meta/episodes", f"episode_index must run 0..{total - 1} (info.json)")
    return rows


def load_meta(root: str | Path) -> DatasetMeta:
    """Read and check the metadata of the v3.0 dataset at ``root``: a directory or a Hub id ``user/name``
    (``vla.data.hub.resolve_dataset``)."""
    root = resolve_dataset(root)
    if not root.is_dir():
        raise DatasetError(root, "dataset directory not found")
    info = check_info(read_json(root / INFO_PATH), root / INFO_PATH)
    return DatasetMeta(
        root=root,
        info=info,
        stats=load_stats(root / STATS_PATH),
        tasks=load_tasks(root / TASKS_PATH, info["total_tasks"]),
        episodes=load_episodes(root, info),
    )
