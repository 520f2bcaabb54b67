"""Integrity checks behind ``vla-dataset validate``: every file and offset of a v3.0 dataset, and its
statistics against the data (``vla.data.stats_checks`` says exactly how).

Each check returns the problems it found as messages naming the file and the field, so one run reports
everything that is wrong instead of stopping at the first.
"""

from __future__ import annotations

import numpy as np

from vla.data.layout import DatasetError
from vla.data.meta import DatasetMeta, video_episode_column
from vla.data.stats_checks import check_stats
from vla.data.table import load_table
from vla.data.video import decode_frames, video_duration

_TOLERANCE_S = 1e-4  # LeRobot's timestamp tolerance


def _check_totals(meta: DatasetMeta) -> list[str]:
    problems = []
    lengths = [row["length"] for row in meta.episodes]
    if sum(lengths) != meta.total_frames:
        problems.append(
            f"meta/info.json: total_frames {meta.total_frames} != sum of episode lengths {sum(lengths)}"
        )
    if len(meta.episodes) != meta.total_episodes:
        problems.append(
            f"meta/info.json: total_episodes {meta.total_episodes} != {len(meta.episodes)} episode rows"
        )
    start = 0
    for expected, row in enumerate(meta.episodes):
        if row["episode_index"] != expected:
            problems.append(
                f"meta/episodes: episode_index {row['episode_index']} where {expected} was expected"
            )
        if (row["dataset_from_index"], row["dataset_to_index"]) != (start, start + row["length"]):
            problems.append(
                f"meta/episodes: episode {expected} dataset_from/to_index {row['dataset_from_index']}.."
                f"{row['dataset_to_index']} != {start}..{start + row['length']}"
            )
        start += row["length"]
    return problems


def _check_episode_video(meta: DatasetMeta, row: dict, key: str, full: bool) -> list[str]:
    column = lambda field: row[video_episode_column(key, field)]  # noqa: E731
    path = meta.video_file(key, column("chunk_index"), column("file_index"))
    where = f"{path.relative_to(meta.root)} (episode {row['episode_index']})"
    if not path.is_file():
        return [f"{where}: video file is missing"]
    start, end = column("from_timestamp"), column("to_timestamp")
    if abs((end - start) - row["length"] / meta.fps) > _TOLERANCE_S:
        return [f"{where}: from/to_timestamp span {end - start:.4f} s != length / fps"]
    if video_duration(path) < end - _TOLERANCE_S:
        return [f"{where}: video is {video_duration(path):.4f} s long, episode ends at {end:.4f} s"]
    frames = np.arange(row["length"]) if full else np.array([0, row["length"] - 1])
    try:
        decode_frames(path, start + frames / meta.fps)
    except DatasetError as error:
        return [str(error)]
    return []


def validate(meta: DatasetMeta, full: bool = False) -> list[str]:
    """Every problem found in ``meta``'s dataset; empty when it is sound."""
    problems = _check_totals(meta)
    try:
        table = load_table(meta)  # data files: contiguous episodes, frame indices, timestamps, finite values
    except DatasetError as error:
        problems.append(str(error))
    else:
        problems += check_stats(meta, table)  # their values against these rows (vla.data.stats_checks)
    for row in meta.episodes:
        for key in meta.camera_keys:
            problems += _check_episode_video(meta, row, key, full)
    return problems
