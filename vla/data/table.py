"""The numeric columns of a LeRobotDataset v3.0 (state, action, bookkeeping), loaded once into numpy arrays.

Rows are frames in global ``index`` order, as the data files hold them (the first ``total_frames`` rows: any
further rows are an interrupted commit's, see ``load_table``); the loader checks the files against
meta/episodes (contiguous episodes, frame_index 0..length-1, index = row, finite values, known task_index)
and names the file and column of the first thing wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla.data.layout import (
    ACTION,
    EPISODE_INDEX,
    EPISODES_PATH,
    FRAME_INDEX,
    INDEX,
    INFO_PATH,
    STATE,
    TASK_INDEX,
    TIMESTAMP,
    DatasetError,
)
from vla.data.meta import DatasetMeta, read_parquet


@dataclass(frozen=True)
class FrameTable:
    """The numeric columns of every frame of the dataset; row r is the frame with global ``index`` r."""

    state: np.ndarray  # (N, S) float32
    action: np.ndarray  # (N, A) float32
    timestamp: np.ndarray  # (N,) float64, seconds since the episode start
    frame_index: np.ndarray  # (N,) int64
    episode_index: np.ndarray  # (N,) int64
    task_index: np.ndarray  # (N,) int64
    episode_starts: np.ndarray  # (E+1,) int64, episode e is rows episode_starts[e] .. episode_starts[e+1]-1
    first: np.ndarray  # (N,) int64, row of the first frame of the row's episode
    last: np.ndarray  # (N,) int64, row of its last frame

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_starts)


def _column(table: pa.Table, name: str, width: int, path: Path) -> np.ndarray:
    """A parquet column as (N,) or, when ``width`` > 1, (N, width) numpy; list columns are flattened."""
    column = table.column(name).combine_chunks()
    values = column
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        if column.null_count == 0 and (np.asarray(column.value_lengths()) != width).any():
            raise DatasetError(path, f"column '{name}' has rows whose length is not {width} (info.json)")
        values = column.flatten()
    elif pa.types.is_fixed_size_list(column.type):
        values = column.flatten()
    if column.null_count or values.null_count:
        raise DatasetError(path, f"column '{name}' has null values")
    array = values.to_numpy(zero_copy_only=False)
    if array.size != len(column) * width:
        raise DatasetError(
            path, f"column '{name}' has {array.size} values for {len(column)} rows of width {width}"
        )
    return array.reshape(len(column), width) if width > 1 else array.reshape(len(column))


def _read_data_file(path: Path, widths: dict[str, int]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DatasetError(path, "data file not found")
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(path, f"corrupt parquet ({err})") from err
    missing = [name for name in widths if name not in names]
    if missing:
        raise DatasetError(path, f"missing column(s) {missing}")
    table = read_parquet(path, list(widths))
    return {name: _column(table, name, width, path) for name, width in widths.items()}


def episodes_file(meta: DatasetMeta, episode: dict) -> Path:
    """The meta/episodes parquet file holding ``episode``'s row, for error messages."""
    return meta.root / EPISODES_PATH.format(
        chunk_index=episode["meta/episodes/chunk_index"], file_index=episode["meta/episodes/file_index"]
    )


def _first_mismatch(found: np.ndarray, expected: np.ndarray) -> int | None:
    bad = np.flatnonzero(found != expected)
    return int(bad[0]) if len(bad) else None


def load_table(meta: DatasetMeta) -> FrameTable:
    """Every data file of the dataset, checked against meta/episodes: each episode's rows are contiguous,
    in the file its row names, with frame_index 0..length-1 and global index = row."""
    widths = {TIMESTAMP: 1, FRAME_INDEX: 1, EPISODE_INDEX: 1, INDEX: 1, TASK_INDEX: 1}
    for key in (STATE, ACTION):
        if key not in meta.features:
            raise DatasetError(meta.root / INFO_PATH, f"no '{key}' in features")
        widths[key] = int(np.prod(meta.features[key]["shape"]))
    files = meta.data_files()
    if not files:
        raise DatasetError(meta.root / INFO_PATH, "the dataset has no episodes")
    parts = [_read_data_file(path, widths) for path in files]
    rows = sum(len(part[INDEX]) for part in parts)
    if rows < meta.total_frames:
        raise DatasetError(
            meta.root / INFO_PATH, f"total_frames is {meta.total_frames}, the data files hold {rows} rows"
        )
    # Rows past total_frames belong to an episode whose commit was interrupted before info.json (the commit
    # point, see vla.data.writer): not part of the dataset. Whatever comes before is checked below.
    cols = {name: np.concatenate([part[name] for part in parts])[: meta.total_frames] for name in widths}
    file_of_row = np.repeat(np.arange(len(files)), [len(part[INDEX]) for part in parts])[: meta.total_frames]
    starts = _episode_starts(meta, files, file_of_row)
    lengths = np.diff(starts)
    expected = {
        INDEX: np.arange(len(cols[INDEX])),
        EPISODE_INDEX: np.repeat(np.arange(len(lengths)), lengths),
        FRAME_INDEX: np.arange(len(cols[INDEX])) - np.repeat(starts[:-1], lengths),
    }
    for name, want in expected.items():
        row = _first_mismatch(cols[name], want)
        if row is not None:
            raise DatasetError(
                files[file_of_row[row]],
                f"column '{name}' is {cols[name][row]} where meta/episodes implies {want[row]}",
            )
    for name, ok in (
        (TASK_INDEX, (cols[TASK_INDEX] >= 0) & (cols[TASK_INDEX] < len(meta.tasks))),
        (STATE, np.isfinite(cols[STATE]).reshape(len(file_of_row), -1).all(1)),
        (ACTION, np.isfinite(cols[ACTION]).reshape(len(file_of_row), -1).all(1)),
        (TIMESTAMP, np.isfinite(cols[TIMESTAMP])),
    ):
        row = _first_mismatch(ok, True)
        if row is not None:
            raise DatasetError(
                files[file_of_row[row]], f"column '{name}' has a bad value at global index {row}"
            )
    return FrameTable(
        state=cols[STATE].astype(np.float32).reshape(len(file_of_row), -1),
        action=cols[ACTION].astype(np.float32).reshape(len(file_of_row), -1),
        timestamp=cols[TIMESTAMP].astype(np.float64),
        frame_index=cols[FRAME_INDEX].astype(np.int64),
        episode_index=cols[EPISODE_INDEX].astype(np.int64),
        task_index=cols[TASK_INDEX].astype(np.int64),
        episode_starts=starts,
        first=np.repeat(starts[:-1], lengths),
        last=np.repeat(starts[1:] - 1, lengths),
    )


def _episode_starts(meta: DatasetMeta, files: list[Path], file_of_row: np.ndarray) -> np.ndarray:
    """(E+1,) first row of each episode, from meta/episodes, checked against the data files."""
    rows = len(file_of_row)
    file_number = {path: i for i, path in enumerate(files)}
    starts = [0]
    for episode in meta.episodes:
        where = episodes_file(meta, episode)
        begin, end = episode["dataset_from_index"], episode["dataset_to_index"]
        if begin != starts[-1] or end - begin != episode["length"] or end > rows:
            raise DatasetError(
                where,
                f"episode {episode['episode_index']}: dataset_from_index {begin}, dataset_to_index {end} and length {episode['length']} do not follow the previous episode",
            )
        data = file_number[meta.data_file(episode["data/chunk_index"], episode["data/file_index"])]
        if episode["length"] and not (file_of_row[begin:end] == data).all():
            raise DatasetError(
                where,
                f"episode {episode['episode_index']}: its rows are not all in {files[data]} (data/chunk_index, data/file_index)",
            )
        starts.append(end)
    if starts[-1] != rows:
        raise DatasetError(
            meta.root / INFO_PATH, f"meta/episodes covers {starts[-1]} frames, total_frames is {rows}"
        )
    return np.asarray(starts, np.int64)
