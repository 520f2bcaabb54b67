"""Shared fixtures: ``make_dataset`` writes a small synthetic LeRobotDataset v3.0 with ``DatasetWriter``.

The synthetic content is a deterministic function of (episode, frame, camera), so a reader's test can check
that it got the right frame of the right episode from the right camera:

- images (H, W, 3) uint8, four flat quadrants (``frame_pattern``), each an identity code
  ``v = 16 * digit + 8`` (digits 0..15; lossy video moves values by a few grey levels, far less than 8):
  top-left: frame % 16, top-right: (frame // 16) % 16, bottom-left: episode % 16, bottom-right: camera index
  (position in ``cameras``). Channels: R = v, G = 255 - v, B = v // 2 (so a channel swap is visible).
  ``read_pattern(image)`` recovers (episode % 16, frame % 256, camera index);
- ``observation.state[j] = 1000 * episode + frame + 0.25 * j`` and ``action[j] = -(1000 * episode + frame)
  - 0.25 * j`` (float32, exact);
- task: ``TASKS[episode % 2]``; extra columns: ``vla/seed`` = seed + episode, ``vla/success`` = episode even;
- lengths: ``lengths`` if given, else drawn from ``np.random.default_rng(seed)`` in [3, 12].
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vla.data.video import decode_frames, encode_video
from vla.data.writer import DatasetWriter, Episode

TASKS = ("pick up the red block", "open the top drawer")
HUB_REPO_ID = "lerobot-fan/tiny_demos"  # the hub_cache fixture's dataset
HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


def frame_pattern(episode: int, frame: int, camera_index: int, image_size: tuple[int, int]) -> np.ndarray:
    """The synthetic image (H, W, 3) uint8 of (episode, frame, camera_index); see the module docstring."""
    height, width = image_size
    digits = np.array([[frame % 16, (frame // 16) % 16], [episode % 16, camera_index % 16]])
    values = 16 * np.repeat(np.repeat(digits, height // 2, axis=0), width // 2, axis=1) + 8  # (H, W)
    return np.stack([values, 255 - values, values // 2], axis=-1).astype(np.uint8)


def read_pattern(image: np.ndarray) -> tuple[int, int, int]:
    """(episode % 16, frame % 256, camera_index) from a (possibly decoded) synthetic image."""
    height, width = image.shape[:2]
    qh, qw = height // 2, width // 2
    # The middle of each quadrant, away from the edges where compression blurs neighbouring quadrants.
    cells = [
        image[r * qh + qh // 4 : (r + 1) * qh - qh // 4, c * qw + qw // 4 : (c + 1) * qw - qw // 4, 0]
        for r in (0, 1)
        for c in (0, 1)
    ]
    low, high, episode, camera = (round(float(cell.mean() - 8) / 16) for cell in cells)
    return episode, low + 16 * high, camera


def state_values(episode: int, length: int, dim: int) -> np.ndarray:
    """(T, dim) float32 state of the synthetic episode."""
    base = 1000.0 * episode + np.arange(length)[:, None]
    return (base + 0.25 * np.arange(dim)).astype(np.float32)


def action_values(episode: int, length: int, dim: int) -> np.ndarray:
    """(T, dim) float32 action of the synthetic episode."""
    base = 1000.0 * episode + np.arange(length)[:, None]
    return (-base - 0.25 * np.arange(dim)).astype(np.float32)


def episode_lengths(episodes: int, lengths, seed: int) -> list[int]:
    if lengths is not None:
        return list(lengths)
    return [int(n) for n in np.random.default_rng(seed).integers(3, 13, size=episodes)]


def synthetic_episode(
    episode: int,
    length: int,
    cameras,
    image_size,
    state_dim: int,
    action_dim: int,
    fps: float,
    staging: Path,
    seed: int,
    task: str | None = None,
    codec: str = "libx264",
) -> Episode:
    videos = {}
    for camera_index, camera in enumerate(cameras):
        frames = np.stack([frame_pattern(episode, t, camera_index, image_size) for t in range(length)])
        videos[camera] = encode_video(frames, staging / f"episode{episode}-{camera}.mp4", fps, codec=codec)
    return Episode(
        task=TASKS[episode % 2] if task is None else task,
        state=state_values(episode, length, state_dim),
        action=action_values(episode, length, action_dim),
        videos=videos,
        extra={"seed": seed + episode, "success": episode % 2 == 0},
    )


@pytest.fixture
def make_dataset(tmp_path_factory):
    """A function writing a synthetic dataset (see the module docstring) and returning its root.

    ``make_dataset(root=None, episodes=3, lengths=None, cameras=("agentview", "wrist"), image_size=(32, 32),
    state_dim=17, action_dim=7, fps=10, seed=0, **writer_options)``: ``root`` None makes a fresh directory;
    ``writer_options`` go to ``DatasetWriter.create`` (e.g. ``data_files_size_in_mb`` to force roll-over).
    """

    def make(
        root=None,
        episodes: int = 3,
        lengths=None,
        cameras=("agentview", "wrist"),
        image_size=(32, 32),
        state_dim: int = 17,
        action_dim: int = 7,
        fps: float = 10,
        seed: int = 0,
        **writer_options,
    ) -> Path:
        root = Path(root) if root is not None else tmp_path_factory.mktemp("dataset") / "ds"
        staging = tmp_path_factory.mktemp("staging")
        writer = DatasetWriter.create(
            root,
            fps=fps,
            cameras=list(cameras),
            image_size=tuple(image_size),
            state_names=[f"state_{j}" for j in range(state_dim)],
            action_names=[f"action_{j}" for j in range(action_dim)],
            robot_type="synthetic",
            **writer_options,
        )
        for episode, length in enumerate(episode_lengths(episodes, lengths, seed)):
            writer.add_episode(
                synthetic_episode(
                    episode,
                    length,
                    cameras,
                    image_size,
                    state_dim,
                    action_dim,
                    fps,
                    staging,
                    seed,
                    codec=writer.codec,
                )
            )
        return root

    return make


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, make_dataset) -> Path:
    """HF_HUB_CACHE at ``tmp_path/hub`` holding dataset ``HUB_REPO_ID`` (3 synthetic episodes), offline; the
    working directory ``tmp_path``. The layout is huggingface_hub's: ``datasets--<user>--<name>/refs/main``
    names a revision, ``snapshots/<revision>/`` holds the files."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / f"datasets--{HUB_REPO_ID.replace('/', '--')}"
    shutil.copytree(make_dataset(episodes=3), repo / "snapshots" / HUB_REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HUB_REVISION)
    # huggingface_hub reads its environment once, at import: the module's constants are what it uses.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # for the subprocess below
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no directory named like the id here
    return cache


# -- reading a written dataset back, for the data tests ---------------------------------------------------
def read_rows(meta) -> dict[str, np.ndarray]:
    table = pa.concat_tables([pq.read_table(path) for path in meta.data_files()])
    out = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            out[name] = column.flatten().to_numpy().reshape(len(column), column.type.list_size)
        else:
            out[name] = column.to_numpy()
    return out


def full_episode_rows(root) -> list[dict]:
    """meta/episodes rows with the per-episode stats columns (which load_meta leaves out)."""
    files = sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))
    return pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()


def decode_episode(meta, episode: dict, key: str) -> np.ndarray:
    chunk, file = episode[f"videos/{key}/chunk_index"], episode[f"videos/{key}/file_index"]
    times = (
        episode[f"videos/{key}/from_timestamp"] + np.arange(episode["length"], dtype=np.float32) / meta.fps
    )
    return decode_frames(meta.video_file(key, chunk, file), times)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one CPU thread for a test module (use with ``pytest.mark.usefixtures``). The models in tests
    are tiny: a second thread gains nothing, and under load from other processes on a 2-core machine torch's
    spinning threads make every forward pass up to 50x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_checkpoint(directory, state_dim: int = 17, action_dim: int = 7) -> Path:
    """A tiny random-weight VLA checkpoint (32x32 images, chunks of 4) at ``directory``, with +-1 statistics:
    for tests of the plumbing around a checkpoint, not of its skill."""
    import torch

    from vla.model.config import LLMConfig, ModelConfig, VisionConfig
    from vla.model.vla import VLA

    torch.manual_seed(0)
    config = ModelConfig(
        vision=VisionConfig(kind="resnet18", width=32),
        llm=LLMConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        image_size=[32, 32],
        chunk_size=4,
        state_dim=state_dim,
        action_dim=action_dim,
    )
    stats = {
        "observation.state": {"q01": -np.ones(state_dim), "q99": np.ones(state_dim)},
        "action": {"q01": -np.ones(action_dim), "q99": np.ones(action_dim)},
    }
    VLA(config, stats).save(directory)
    return Path(directory)
