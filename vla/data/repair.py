"""Roll a dataset directory back to its last committed episode after an interrupted ``add_episode``.

``DatasetWriter`` writes an episode's files in a fixed order and info.json last; info.json's totals are the
commit point. A crash in between leaves files holding more than info.json says: data rows with
``index >= total_frames``, video longer than the last committed episode's ``to_timestamp``, episode rows with
``episode_index >= total_episodes``, tasks past ``total_tasks``, a new data or video file nobody committed, or
a temporary file of an atomic write. Each is cut back here, so the directory again holds exactly the committed
dataset (stats.json is recomputed by the writer, which holds the columns).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from vla.data.atomic import TMP_SUFFIX, write_parquet_atomic
from vla.data.layout import EPISODE_INDEX, INDEX, TASKS_PATH, DatasetError
from vla.data.meta import DatasetMeta, read_parquet, video_episode_column
from vla.data.video import TIMESTAMP_TOLERANCE_S, truncate_video, video_duration
from vla.data.write_tables import tasks_table


def _remove_tmp_files(root: Path) -> list[str]:
    leftovers = sorted(p for p in root.rglob(f".*{TMP_SUFFIX}") if p.is_file())
    for path in leftovers:
        path.unlink()
    return [f"removed {path}" for path in leftovers]


def _cut_rows(path: Path, column: str, limit: int) -> list[str]:
    """Keep the rows of ``path`` whose ``column`` is below ``limit``; delete the file if none remain."""
    table = read_parquet(path)
    if column not in table.column_names:
        raise DatasetError(path, f"missing column '{column}'")
    keep = pc.less(table.column(column), limit)
    kept = table.filter(keep)
    if kept.num_rows == table.num_rows:
        return []
    if kept.num_rows == 0:
        path.unlink()
        return [f"removed {path} (uncommitted rows only)"]
    write_parquet_atomic(path, kept)
    return [f"cut {path} from {table.num_rows} to {kept.num_rows} rows"]


def _repair_data(meta: DatasetMeta) -> list[str]:
    committed = set(meta.data_files())
    changes = []
    for path in sorted(meta.root.glob("data/chunk-*/file-*.parquet")):
        if path not in committed:
            path.unlink()
            changes.append(f"removed {path} (uncommitted)")
        else:
            changes += _cut_rows(path, INDEX, meta.total_frames)
    return changes


def _repair_video(meta: DatasetMeta, key: str) -> list[str]:
    chunk, file = video_episode_column(key, "chunk_index"), video_episode_column(key, "file_index")
    places = {(ep[chunk], ep[file]) for ep in meta.episodes}
    committed = {meta.video_file(key, c, f) for c, f in places}
    changes = []
    for path in sorted((meta.root / "videos" / key).glob("chunk-*/file-*.mp4")):
        if path not in committed:
            path.unlink()
            changes.append(f"removed {path} (uncommitted)")
    if meta.episodes:
        # Only the file of the last episode is ever appended to; earlier files are closed.
        last = meta.episodes[-1]
        path = meta.video_file(key, last[chunk], last[file])
        end = last[video_episode_column(key, "to_timestamp")]
        if video_duration(path) > end + TIMESTAMP_TOLERANCE_S:
            truncate_video(path, end)
            changes.append(f"cut {path} back to {end:.4f} s")
    return changes


def _repair_episodes(meta: DatasetMeta) -> list[str]:
    changes = []
    for path in sorted(meta.root.glob("meta/episodes/chunk-*/file-*.parquet")):
        changes += _cut_rows(path, EPISODE_INDEX, meta.total_episodes)
    return changes


def _repair_tasks(meta: DatasetMeta) -> list[str]:
    path = meta.root / TASKS_PATH
    if read_parquet(path).num_rows == len(meta.tasks):
        return []
    write_parquet_atomic(path, tasks_table(meta.tasks))
    return [f"cut {path} back to {len(meta.tasks)} tasks"]


def repair_uncommitted(meta: DatasetMeta) -> list[str]:
    """Cut every file under ``meta.root`` back to the committed dataset ``meta``; say what was changed."""
    changes = _remove_tmp_files(meta.root)
    changes += _repair_data(meta)
    for key in meta.camera_keys:
        changes += _repair_video(meta, key)
    changes += _repair_episodes(meta)
    return changes + _repair_tasks(meta)
