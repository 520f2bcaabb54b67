"""Writing LeRobotDataset v3.0 datasets episode by episode, each episode committed atomically.

``add_episode`` writes, in this order: the data parquet (old rows + new rows, replaced atomically), each
camera's video (the episode's mp4 remuxed onto the end of the camera's file), the episode's row in
meta/episodes, tasks.parquet, stats.json and LAST info.json, whose totals are the commit point. A crash
before info.json leaves files holding more than info.json says; ``DatasetWriter.open`` (and a failed
``add_episode`` itself) cuts them back (``vla.data.repair``), so an episode is in the dataset whole or not
at all. Every file is made durable (fsynced, and its directory after the rename) before the next is
written, info.json included, so a committed episode survives a power cut too (``vla.data.atomic``).

A writer holds the dataset's lock (``vla.data.lock``) from ``create``/``open`` until ``close``, so a second
writer on the same directory is refused instead of cutting back the first one's episode in progress.

Data and video files roll over to the next file_index once adding the episode would take them past
``data_files_size_in_mb`` / ``video_files_size_in_mb`` (so a file exceeds its limit only when it holds a
single episode bigger than the limit); chunk_index advances every ``chunks_size`` files. Episode rows roll
over the same way, at ``data_files_size_in_mb``.

Beyond LeRobot's columns, an episode row holds ``vla/<key>`` for each ``Episode.extra`` item and
``vla/pixel_histogram/<video key>``: the (3, 256) pixel-value counts of the episode's raw frames, from which
exact image statistics of the whole dataset are recomputed (no sidecar file to keep in step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from vla.data.atomic import make_dirs, write_json_atomic, write_parquet_atomic
from vla.data.committed import check_compatible, committed_stats, extra_schema
from vla.data.episode import EXTRA_PREFIX, HISTOGRAM_PREFIX, Episode, checked_episode, frame_columns
from vla.data.layout import (
    CHUNKS_SIZE,
    DATA_FILES_SIZE_MB,
    EPISODES_PATH,
    INFO_PATH,
    STATE,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_FILES_SIZE_MB,
    DatasetError,
    camera_of,
    empty_info,
    make_features,
)
from vla.data.lock import LOCK_NAME, DatasetLock
from vla.data.meta import DatasetMeta, is_bulky, load_meta, read_parquet, video_episode_column
from vla.data.repair import repair_uncommitted
from vla.data.stats import RunningStats, dataset_stats, image_stats_from_histogram, stats_to_json
from vla.data.video import CODEC_NAMES, ENCODERS, append_video, check_appendable
from vla.data.write_tables import episodes_table, frames_table, tasks_table

__all__ = ["DatasetWriter", "Episode"]

MB = 1024**2


def next_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    if file_index + 1 >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def write_stats(root: Path, running: dict[str, RunningStats], histograms: dict[str, np.ndarray]) -> None:
    """stats.json of the dataset whose rows have the statistics ``running`` and pixel counts ``histograms``."""
    frames = min((stats.count for stats in running.values()), default=0)
    stats = stats_to_json(dataset_stats(running, histograms, frames)) if frames else {}
    write_json_atomic(root / STATS_PATH, stats)


@dataclass
class DatasetWriter:
    """Appends episodes to the dataset at ``root``; build it with ``create`` or ``open``, end with ``close``.

    ``with DatasetWriter.open(root) as writer:`` closes it (releases the dataset's lock) on leaving.
    """

    meta: DatasetMeta  # the committed dataset (its stats field is not kept up to date; stats.json is)
    running: dict[str, RunningStats]  # numeric feature -> exact statistics of its committed rows
    histograms: dict[str, np.ndarray]  # video key -> summed (3, 256) pixel counts of committed episodes
    lock: DatasetLock = field(repr=False)  # this writer's hold on the dataset; released by close()

    @property
    def root(self) -> Path:
        return self.meta.root

    @property
    def codec(self) -> str | None:
        """The encoder episodes' videos must come from (e.g. "libx264"); None without cameras."""
        keys = self.meta.camera_keys
        return ENCODERS.get(self.meta.features[keys[0]]["info"]["video.codec"]) if keys else None

    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        fps: float,
        cameras,
        image_size: tuple[int, int],
        state_names,
        action_names,
        robot_type: str | None = None,
        codec: str = "libx264",
        data_files_size_in_mb: float = DATA_FILES_SIZE_MB,
        video_files_size_in_mb: float = VIDEO_FILES_SIZE_MB,
        chunks_size: int = CHUNKS_SIZE,
    ) -> DatasetWriter:
        """A new, empty dataset at ``root`` (which must not exist or be empty), open for appending."""
        root = Path(root)
        _require_empty(root)
        if codec not in CODEC_NAMES:
            raise ValueError(f"codec must be one of {sorted(CODEC_NAMES)}, got {codec!r}")
        height, width = image_size
        if height <= 0 or width <= 0 or height % 2 or width % 2:
            raise ValueError(f"image_size must be positive and even (yuv420p video), got {image_size}")
        if not fps > 0 or chunks_size < 1 or not data_files_size_in_mb > 0 or not video_files_size_in_mb > 0:
            raise ValueError("fps, chunks_size and the file size limits must be positive")
        if not float(fps).is_integer():
            # LeRobot stores fps as an int; its writer fails to append to a dataset with a float fps.
            raise ValueError(f"fps must be a whole number of frames per second (LeRobot's format), got {fps}")
        fps = int(fps)
        features = make_features(cameras, image_size, state_names, action_names, fps, CODEC_NAMES[codec])
        info = empty_info(features, fps, robot_type)
        info.update(
            chunks_size=chunks_size,
            data_files_size_in_mb=data_files_size_in_mb,
            video_files_size_in_mb=video_files_size_in_mb,
        )
        make_dirs(root)
        lock = DatasetLock(root)
        try:
            _require_empty(root)  # again, now that no other writer can be creating it
            write_json_atomic(root / STATS_PATH, {})
            write_parquet_atomic(root / TASKS_PATH, tasks_table([]))
            write_json_atomic(root / INFO_PATH, info)
        except BaseException:
            lock.release()
            raise
        return cls._open_locked(lock, {})

    @classmethod
    def open(cls, root: str | Path, **expected) -> DatasetWriter:
        """The dataset at ``root``, ready to append to, with an interrupted commit cut back.

        ``expected`` (any of fps, cameras, image_size, state_names, action_names, codec) are checked against
        the dataset, to refuse appending episodes of another robot or camera set-up. Another process (or
        another writer in this one) writing the dataset is a ``DatasetLocked`` error naming its pid.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(root, "dataset directory not found")
        if not (root / INFO_PATH).is_file():  # not a dataset: leave no lock file in it
            raise DatasetError(root / INFO_PATH, "file not found")
        return cls._open_locked(DatasetLock(root), expected)

    @classmethod
    def _open_locked(cls, lock: DatasetLock, expected: dict) -> DatasetWriter:
        try:
            meta = load_meta(lock.path.parent)
            check_compatible(meta, expected)
            writer = cls(meta, *committed_stats(meta), lock)
            if repair_uncommitted(meta):
                write_stats(meta.root, writer.running, writer.histograms)
        except BaseException:
            lock.release()
            raise
        return writer

    def close(self) -> None:
        """Release the dataset for other writers; every added episode is already committed."""
        self.lock.release()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def add_episode(self, episode: Episode) -> int:
        """Validate ``episode``, commit it, and return its episode_index."""
        if not self.lock.held:
            raise DatasetError(self.root, "this writer was closed; open the dataset again to add episodes")
        meta = self.meta
        episode = checked_episode(episode, meta.features, meta.fps, extra_schema(meta))
        tasks = meta.tasks if episode.task in meta.tasks else [*meta.tasks, episode.task]
        index = meta.total_episodes
        columns = frame_columns(episode, index, tasks.index(episode.task), meta.total_frames, meta.fps)
        video_places = {key: self._video_place(key, episode) for key in meta.camera_keys}
        for key, (chunk, file) in video_places.items():
            check_appendable(meta.video_file(key, chunk, file), episode.videos[camera_of(key)].path)
        try:
            row = self._commit(episode, columns, tasks, video_places)
        except BaseException:
            repair_uncommitted(self.meta)  # back to the committed dataset on disk
            write_stats(self.root, self.running, self.histograms)
            raise
        return row["episode_index"]

    # -- commit steps, in order --------------------------------------------------------------------------

    def _commit(self, episode: Episode, columns: dict, tasks: list[str], video_places: dict) -> dict:
        meta, length = self.meta, len(episode.state)
        row = {"episode_index": meta.total_episodes, "tasks": [episode.task], "length": length}
        row.update(self._write_data(columns))
        for key, place in video_places.items():
            row.update(self._write_video(key, place, episode))
        episode_stats = {name: RunningStats.of(values, name) for name, values in columns.items()}
        row = self._write_episode_row(row, episode_stats, episode)
        episodes = [*meta.episodes, {name: value for name, value in row.items() if not is_bulky(name)}]
        if tasks != meta.tasks:
            write_parquet_atomic(self.root / TASKS_PATH, tasks_table(tasks))
        running = {name: stats.merged(episode_stats[name]) for name, stats in self.running.items()}
        histograms = {
            key: self.histograms[key] + episode.videos[camera_of(key)].histogram for key in meta.camera_keys
        }
        write_stats(self.root, running, histograms)
        info = dict(meta.info)
        info.update(
            total_episodes=len(episodes),
            total_frames=meta.total_frames + length,
            total_tasks=len(tasks),
            splits={"train": f"0:{len(episodes)}"},
        )
        write_json_atomic(self.root / INFO_PATH, info)  # the commit point
        self.meta = DatasetMeta(self.root, info, {}, tasks, episodes)
        self.running, self.histograms = running, histograms
        return row

    def _write_data(self, columns: dict[str, np.ndarray]) -> dict:
        meta, new = self.meta, frames_table(columns)
        start = meta.total_frames
        place, old = (0, 0), None
        if meta.episodes:
            last = meta.episodes[-1]
            place = (last["data/chunk_index"], last["data/file_index"])
            path = meta.data_file(*place)
            if _size(path) + new.nbytes > meta.info["data_files_size_in_mb"] * MB:
                place = next_file(*place, meta.info["chunks_size"])
            else:
                old = read_parquet(path)
        path = meta.data_file(*place)
        write_parquet_atomic(path, _appended(old, new, path))
        return {
            "data/chunk_index": place[0],
            "data/file_index": place[1],
            "dataset_from_index": start,
            "dataset_to_index": start + len(columns[STATE]),
        }

    def _video_place(self, key: str, episode: Episode) -> tuple[int, int]:
        meta = self.meta
        if not meta.episodes:
            return 0, 0
        last = meta.episodes[-1]
        place = (
            last[video_episode_column(key, "chunk_index")],
            last[video_episode_column(key, "file_index")],
        )
        size = meta.video_file(key, *place).stat().st_size
        if (
            size + Path(episode.videos[camera_of(key)].path).stat().st_size
            > meta.info["video_files_size_in_mb"] * MB
        ):
            return next_file(*place, meta.info["chunks_size"])
        return place

    def _write_video(self, key: str, place: tuple[int, int], episode: Episode) -> dict:
        video = episode.videos[camera_of(key)]
        start = append_video(self.meta.video_file(key, *place), video.path)
        return {
            video_episode_column(key, "chunk_index"): place[0],
            video_episode_column(key, "file_index"): place[1],
            video_episode_column(key, "from_timestamp"): start,
            video_episode_column(key, "to_timestamp"): start + video.num_frames / self.meta.fps,
        }

    def _write_episode_row(self, row: dict, episode_stats: dict, episode: Episode) -> dict:
        """Complete ``row`` (stats, histograms, extras, its file) and append it to its meta/episodes file."""
        stats = {name: running.stats() for name, running in episode_stats.items()}
        for key in self.meta.camera_keys:
            video = episode.videos[camera_of(key)]
            stats[key] = image_stats_from_histogram(video.histogram, video.num_frames)
            row[HISTOGRAM_PREFIX + key] = video.histogram.tolist()
        for feature, values in stats_to_json(stats).items():
            row.update({f"stats/{feature}/{name}": value for name, value in values.items()})
        row.update({EXTRA_PREFIX + key: value for key, value in episode.extra.items()})
        place, old = (0, 0), None
        if self.meta.episodes:
            previous = self.meta.episodes[-1]
            place = (previous["meta/episodes/chunk_index"], previous["meta/episodes/file_index"])
            path = self.root / EPISODES_PATH.format(chunk_index=place[0], file_index=place[1])
            if _size(path) > self.meta.info["data_files_size_in_mb"] * MB:
                place = next_file(*place, self.meta.info["chunks_size"])
            else:
                old = read_parquet(path)
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = place
        path = self.root / EPISODES_PATH.format(chunk_index=place[0], file_index=place[1])
        write_parquet_atomic(path, _appended(old, episodes_table([row]), path))
        return row


def _require_empty(root: Path) -> None:
    if root.exists() and any(path.name != LOCK_NAME for path in root.iterdir()):
        raise DatasetError(root, "directory exists and is not empty; use DatasetWriter.open to append")


def _size(path: Path) -> int:
    if not path.is_file():
        raise DatasetError(path, "file of the last committed episode not found")
    return path.stat().st_size


def _appended(old: pa.Table | None, new: pa.Table, path: Path) -> pa.Table:
    """``old`` rows then ``new`` rows; their columns must agree."""
    if old is None:
        return new
    if old.schema.names != new.schema.names or old.schema.types != new.schema.types:
        raise DatasetError(path, f"columns {old.schema.names} differ from the new rows' {new.schema.names}")
    return pa.concat_tables([old, new.cast(old.schema)])
