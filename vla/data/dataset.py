"""``VLADataset``: training samples from any LeRobotDataset v3.0 directory, ours or LeRobot's.

A sample, for frame t of an episode (K = ``chunk_size``, h = ``history``)::

    images        {slot: uint8 (3, H, W)}, or (h+1, 3, H, W) when h > 0 (oldest first, frame t last)
    state         float32 (S,), or (h+1, S) when h > 0
    goal_state    float32 (S,), the state at the last frame of frame t's instruction: the episode's last frame
                  when the episode has one instruction, the end of the skill when its frames carry skill
                  labels (policies/recording/relabel.py); a target for auxiliary losses, never a model input
    switch_state  float32 (S,), the state at the next frame at or after t whose gripper label switches (the
                  grasp, the release; vla/data/gripper.py), else at the last frame: the current phase's target
    instruction_done  bool, whether t is the last frame of its instruction (its action finishes the skill,
                  or the episode): a termination target
    history_mask  bool (h+1,), only when h > 0: False for frames before the episode start
    instruction   str, the task of frame t (its task_index in meta/tasks.parquet)
    actions       float32 (K, A), the actions of frames t .. t+K-1
    action_mask   bool (K,): False where t+k runs past the episode's last frame
    episode_index int
    frame_index   int, t

With a pretrained trunk's maps attached (``use_maps``; vla/train/features.py), ``trunk_maps`` {slot: {name:
float16 (C, h, w)}} replaces ``images``: the pictures were encoded once, when the cache was built.

Padding never crosses an episode boundary: actions past the end repeat the episode's last action, and history
before the start repeats its first frame (images and state); the masks say which entries are real, so a loss
can drop the padding while the model still sees plausible values (a robot at rest keeps its last command).

Values are raw: normalization belongs to the model's processor, which takes ``dataset.stats``.

The numeric columns of every frame are loaded once into numpy arrays (row = the global ``index``); pictures
are decoded from the videos on demand (seek to a keyframe, decode at most a GOP) or read from a decoded
uint8 memmap cache (``cache="memmap"``: ``<root>/.cache``; or a directory of your choice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from vla.data.cache import CACHE_DIR, CameraFrames, MemmapFrames, VideoFrames, open_cache
from vla.data.gripper import gripper_column, gripper_switches, next_switch_rows
from vla.data.layout import DatasetError, camera_of, image_key
from vla.data.meta import DatasetMeta, load_meta, video_episode_column
from vla.data.table import FrameTable, episodes_file, load_table
from vla.data.transforms import check_size, to_chw

# Sample keys.
IMAGES = "images"
STATE_KEY = "state"
GOAL_STATE = "goal_state"
SWITCH_STATE = "switch_state"
INSTRUCTION_DONE = "instruction_done"
TRUNK_MAPS = "trunk_maps"
HISTORY_MASK = "history_mask"
INSTRUCTION = "instruction"
ACTIONS = "actions"
ACTION_MASK = "action_mask"
EPISODE = "episode_index"
FRAME = "frame_index"


def instruction_end_rows(table: FrameTable) -> np.ndarray:
    """(N,) int64: for each row, the last row of its run of one task_index within its episode."""
    rows = np.arange(len(table.last), dtype=np.int64)
    changes = np.zeros(len(rows), bool)
    changes[:-1] = table.task_index[1:] != table.task_index[:-1]  # the next row follows another instruction
    return next_switch_rows(table, changes | (rows == table.last))


def resolve_cameras(cameras, meta: DatasetMeta) -> dict[str, str]:
    """{slot: video key} from None (every camera, in info.json order), a list of cameras or {slot: camera}."""
    available = [camera_of(key) for key in meta.camera_keys]
    if cameras is None:
        mapping = {camera: camera for camera in available}
    elif isinstance(cameras, Mapping):
        mapping = {str(slot): camera_of(str(camera)) for slot, camera in cameras.items()}
    elif isinstance(cameras, Sequence) and not isinstance(cameras, str):
        mapping = {camera_of(str(c)): camera_of(str(c)) for c in cameras}
        if len(mapping) != len(cameras):
            raise ValueError(f"cameras lists a camera twice: {list(cameras)}")
    else:
        raise ValueError(
            f"cameras must be None, a list of camera names or a {{slot: camera}} map, got {cameras!r}"
        )
    unknown = sorted({camera for camera in mapping.values() if camera not in available})
    if unknown:
        stored = [c for c in unknown if image_key(c) in meta.features]  # e.g. dtype "image": PNGs in parquet
        detail = f" ({stored} are not video features, the only kind read here)" if stored else ""
        raise ValueError(
            f"unknown camera(s) {unknown}{detail}; the dataset at {meta.root} has video cameras {available}"
        )
    return {slot: image_key(camera) for slot, camera in mapping.items()}


def camera_frames(meta: DatasetMeta, table: FrameTable, key: str) -> CameraFrames:
    """Where each frame's picture lives for camera ``key``: its episode's video file and time in it."""
    files: dict[Path, int] = {}
    file_per_episode, start_per_episode = [], []
    for episode in meta.episodes:
        chunk = episode[video_episode_column(key, "chunk_index")]
        path = meta.video_file(key, chunk, episode[video_episode_column(key, "file_index")])
        if path not in files:
            if not path.is_file():
                raise DatasetError(path, f"video file not found (episode {episode['episode_index']}, {key})")
            files[path] = len(files)
        file_per_episode.append(files[path])
        start = episode[video_episode_column(key, "from_timestamp")]
        if not isinstance(start, int | float) or not np.isfinite(start):
            column = video_episode_column(key, "from_timestamp")
            raise DatasetError(
                episodes_file(meta, episode), f"episode {episode['episode_index']}: '{column}' is {start!r}"
            )
        start_per_episode.append(start)
    lengths = table.episode_lengths
    return CameraFrames(
        key=key,
        files=tuple(files),
        file_of=np.repeat(np.asarray(file_per_episode, np.int64), lengths),
        time_of=np.repeat(np.asarray(start_per_episode, np.float64), lengths) + table.timestamp,
        shape=stored_size(meta.features[key]),
    )


def stored_size(feature: dict) -> tuple[int, int]:
    """(H, W) of a video feature: shape is [H, W, C], or [C, H, W] in some converted LeRobot datasets."""
    shape, names = feature["shape"], feature.get("names") or []
    if list(names)[:1] == ["channels"]:
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


def select_rows(meta: DatasetMeta, table: FrameTable, episodes) -> np.ndarray:
    """The global frame indices of the chosen episodes, in episode order."""
    if episodes is None:
        return np.arange(len(table.timestamp))
    episodes = list(episodes)
    chosen = sorted({int(e) for e in episodes})
    if len(chosen) != len(episodes):
        raise ValueError(f"episodes lists an episode twice: {list(episodes)}")
    bad = [e for e in chosen if not 0 <= e < meta.total_episodes]
    if bad:
        raise ValueError(
            f"episodes {bad} do not exist; {meta.root} has episodes 0..{meta.total_episodes - 1}"
        )
    starts = table.episode_starts
    return np.concatenate([np.arange(starts[e], starts[e + 1]) for e in chosen] or [np.zeros(0, np.int64)])


class VLADataset(Dataset):
    """Samples of a LeRobotDataset v3.0 (see the module docstring for their keys and shapes).

    Args:
        root: the dataset directory (holding ``meta/info.json``), or a Hub id ``user/name`` in the Hugging
            Face cache (``vla.data.hub``).
        cameras: None for every camera; a list of dataset cameras (``"agentview"`` for
            ``observation.images.agentview``); or ``{slot: dataset camera}`` to rename them.
        image_size: None keeps the stored size; ``(H, W)`` resizes (bilinear, antialiased).
        chunk_size: K, the number of actions per sample (frames t .. t+K-1).
        history: h, the number of past frames of images and state before frame t.
        cache: None decodes videos on demand; ``"memmap"`` caches decoded frames under ``<root>/.cache``;
            any other string or path is the directory for the cache files. Built once, rebuilt when stale.
        episodes: the episode indices to draw samples from (default: all).
    """

    def __init__(
        self,
        root,
        *,
        cameras=None,
        image_size=None,
        chunk_size: int = 10,
        history: int = 0,
        cache=None,
        episodes=None,
    ):
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        if not isinstance(history, int) or history < 0:
            raise ValueError(f"history must be a non-negative int, got {history!r}")
        self.meta = load_meta(root)  # a directory, or a Hub id resolved to its cache folder
        self.root = self.meta.root
        self.chunk_size, self.history = chunk_size, history
        self.image_size = check_size(image_size)
        self.cameras = resolve_cameras(cameras, self.meta)  # {slot: video key}
        self.table = load_table(self.meta)
        self.rows = select_rows(self.meta, self.table, episodes)  # sample i -> global frame index
        column = gripper_column(self.meta)
        switched = (
            np.zeros(len(self.table.last), bool) if column is None else gripper_switches(self.table, column)
        )
        self.next_switch = next_switch_rows(self.table, switched)  # (N,) row of each frame's phase end
        self.instruction_end = instruction_end_rows(
            self.table
        )  # (N,) row where each frame's instruction ends
        self._sources = self._open_sources(cache)
        self._resize = None if cache is not None else self.image_size  # the cache holds resized frames
        self.maps: dict[str, dict[str, MemmapFrames]] | None = None  # {slot: {name: (N, C, h, w)}}

    def image_cache(self, slot: str) -> MemmapFrames:
        """The decoded-frame cache of a camera slot; an error when the dataset decodes videos instead."""
        source = self._sources[slot]
        if not isinstance(source, MemmapFrames):
            raise ValueError(
                f"{self.root}: camera slot '{slot}' has no frame cache (open the dataset with cache=)"
            )
        return source

    def use_maps(self, maps: dict[str, dict[str, MemmapFrames]]) -> None:
        """Samples carry these per-frame maps ({slot: {name: rows (N, C, h, w)}}) instead of the pictures."""
        if self.history:
            raise ValueError("cached trunk maps carry one frame per sample; history must be 0")
        if sorted(maps) != sorted(self._sources):
            raise ValueError(
                f"maps for slots {sorted(maps)}; the dataset's camera slots are {sorted(self._sources)}"
            )
        self.maps = maps

    def _open_sources(self, cache) -> dict[str, VideoFrames | MemmapFrames]:
        sources = {}
        for slot, key in self.cameras.items():
            frames = camera_frames(self.meta, self.table, key)
            if cache is None:
                sources[slot] = VideoFrames(frames, self.meta.fps)
            else:
                directory = self.root / CACHE_DIR if cache == "memmap" else Path(cache)
                sources[slot] = open_cache(frames, self.root, directory, self.image_size)
        return sources

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """The dataset statistics (meta/stats.json), for the model's normalizer."""
        return self.meta.stats

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for a dataset of {len(self)} samples")
        t = int(self.rows[i])
        table = self.table
        ahead = t + np.arange(self.chunk_size)
        action_rows = np.minimum(ahead, table.last[t])  # (K,)
        back = t - np.arange(self.history, -1, -1)
        history_rows = np.maximum(back, table.first[t])  # (h+1,) oldest first
        state = torch.from_numpy(table.state[history_rows])
        sample = {
            **self._pictures(history_rows),
            STATE_KEY: state if self.history else state[0],
            GOAL_STATE: torch.from_numpy(table.state[self.instruction_end[t]].copy()),
            SWITCH_STATE: torch.from_numpy(table.state[self.next_switch[t]].copy()),
            INSTRUCTION_DONE: bool(self.instruction_end[t] == t),
            INSTRUCTION: self.meta.tasks[table.task_index[t]],
            ACTIONS: torch.from_numpy(table.action[action_rows]),
            ACTION_MASK: torch.from_numpy(ahead <= table.last[t]),
            EPISODE: int(table.episode_index[t]),
            FRAME: int(table.frame_index[t]),
        }
        if self.history:
            sample[HISTORY_MASK] = torch.from_numpy(back >= table.first[t])
        return sample

    def _pictures(self, rows: np.ndarray) -> dict:
        """{IMAGES: ...} of the (h+1,) rows, or {TRUNK_MAPS: ...} of the last one when maps are attached."""
        if self.maps is not None:  # history is 0: rows is (1,)
            return {
                TRUNK_MAPS: {
                    slot: {name: torch.from_numpy(source.read(rows)[0]) for name, source in named.items()}
                    for slot, named in self.maps.items()
                }
            }
        images = {slot: to_chw(src.read(rows), self._resize) for slot, src in self._sources.items()}
        return {IMAGES: images if self.history else {slot: image[0] for slot, image in images.items()}}


def collate(samples: list[dict]) -> dict:
    """Batch samples for a DataLoader: tensors stacked on a new first axis (images per slot),
    ``instruction`` a list of str, ``episode_index``/``frame_index`` int64 tensors."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    # default_collate stacks straight into shared memory inside DataLoader workers (one copy fewer).
    return default_collate(samples)
