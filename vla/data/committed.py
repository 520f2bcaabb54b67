"""What ``DatasetWriter`` must know of an existing dataset before appending to it.

Whether it is the dataset the caller means (same robot, cameras, image size, codec), exact statistics of the
committed rows of every numeric feature, the summed pixel histograms, and
the extra episode columns that later episodes must repeat.
"""

from __future__ import annotations

import numpy as np

from vla.data.episode import EXTRA_PREFIX, HISTOGRAM_PREFIX
from vla.data.layout import (
    ACTION,
    EPISODE_INDEX,
    INDEX,
    INFO_PATH,
    STATE,
    DatasetError,
    camera_of,
    video_keys,
)
from vla.data.meta import DatasetMeta, episode_files, read_parquet
from vla.data.stats import RunningStats
from vla.data.video import ENCODERS
from vla.data.write_tables import column_numpy

NON_NUMERIC_DTYPES = ("video", "image", "string")
CHECKABLE = ("fps", "cameras", "image_size", "state_names", "action_names", "codec")


def numeric_features(features: dict) -> list[str]:
    """Features stored as data-parquet columns with statistics: state, action and the bookkeeping ints."""
    return [key for key, spec in features.items() if spec["dtype"] not in NON_NUMERIC_DTYPES]


def _setup(meta: DatasetMeta) -> dict:
    features = meta.features
    for key in (STATE, ACTION):
        if key not in features:
            raise DatasetError(meta.root / INFO_PATH, f"missing feature '{key}'")
    keys = video_keys(features)
    for key in keys:
        codec = features[key].get("info", {}).get("video.codec")
        if codec not in ENCODERS:
            raise DatasetError(
                meta.root / INFO_PATH, f"video '{key}' has codec {codec!r}; cannot append to it"
            )
    return {
        "fps": meta.fps,
        "cameras": tuple(camera_of(key) for key in keys),
        "image_size": tuple(features[keys[0]]["shape"][:2]) if keys else None,
        "state_names": tuple(features[STATE].get("names") or ()),
        "action_names": tuple(features[ACTION].get("names") or ()),
        "codec": ENCODERS[features[keys[0]]["info"]["video.codec"]] if keys else None,
    }


def check_compatible(meta: DatasetMeta, expected: dict) -> None:
    """``expected`` {name in CHECKABLE: value or None} must match the dataset's set-up."""
    actual = _setup(meta)
    for name, value in expected.items():
        if name not in CHECKABLE:
            raise TypeError(f"unexpected argument '{name}', expected one of {CHECKABLE}")
        wanted = tuple(value) if isinstance(value, list | tuple) else value
        if value is not None and wanted != actual[name]:
            raise DatasetError(
                meta.root / INFO_PATH, f"{name} is {actual[name]!r}, the caller expects {wanted!r}"
            )


def committed_stats(meta: DatasetMeta) -> tuple[dict[str, RunningStats], dict[str, np.ndarray]]:
    """Statistics of the committed rows of each numeric feature, and summed (3, 256) pixel histograms."""
    names = numeric_features(meta.features)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for path in meta.data_files():
        table = read_parquet(path)
        rows = column_numpy(table, INDEX, path) < meta.total_frames  # rows past it are uncommitted
        for name in names:
            parts[name].append(column_numpy(table, name, path)[rows])
    found = sum(len(part) for part in parts[INDEX])
    if found != meta.total_frames:
        raise DatasetError(
            meta.root / INFO_PATH, f"total_frames is {meta.total_frames}, the data files hold {found}"
        )
    empty = {name: np.zeros((0, max(meta.features[name]["shape"][0], 1))) for name in names}
    running = {
        name: RunningStats.of(np.concatenate(parts[name]) if parts[name] else empty[name], name)
        for name in names
    }
    return running, committed_histograms(meta)


def committed_histograms(meta: DatasetMeta) -> dict[str, np.ndarray]:
    """Per video key, the summed (3, 256) pixel counts of the committed episodes (meta/episodes columns)."""
    return {key: counts.sum(axis=0) for key, counts in episode_histograms(meta).items()}


def episode_histograms(meta: DatasetMeta) -> dict[str, np.ndarray]:
    """Per video key, the (E, 3, 256) pixel counts of each committed episode's raw frames, in episode order;
    ``DatasetError`` when meta/episodes lacks their column (a dataset vla-stack did not write)."""
    parts: dict[str, list[np.ndarray]] = {key: [] for key in meta.camera_keys}
    order = []
    for path in episode_files(meta.root):
        table = read_parquet(path)
        episodes = column_numpy(table, EPISODE_INDEX, path)
        committed = episodes < meta.total_episodes
        order.append(episodes[committed])
        for key in parts:
            column = HISTOGRAM_PREFIX + key
            if column not in table.column_names:
                raise DatasetError(path, f"missing column '{column}' (not written by vla-stack)")
            counts = table.column(column).combine_chunks().flatten().flatten().to_numpy(zero_copy_only=False)
            parts[key].append(counts.reshape(-1, 3, 256)[committed])
    rank = np.argsort(np.concatenate(order)) if order else np.zeros(0, np.int64)
    return {
        key: np.concatenate(chunks)[rank].astype(np.int64) if chunks else np.zeros((0, 3, 256), np.int64)
        for key, chunks in parts.items()
    }


def extra_schema(meta: DatasetMeta) -> dict[str, type] | None:
    """{key: type} of the ``vla/<key>`` extra columns of the first episode; None without episodes."""
    if not meta.episodes:
        return None
    row = meta.episodes[0]
    return {
        name.removeprefix(EXTRA_PREFIX): type(value)
        for name, value in row.items()
        if name.startswith(EXTRA_PREFIX) and not name.startswith(HISTOGRAM_PREFIX)
    }
