"""The rollout loop, the MP4 writer and the ``vla-sim-report`` app (CPU, a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import sim
from policies.reports import video
from policies.reports.video import caption, read_mp4, write_mp4
from policies.rollout import run_episode

# On smooth images the mean absolute error is about 1 grey level (H.264 at CRF 23 and the MPEG-4 fallback); 4 leaves room for
# encoder versions without letting a colour-channel swap or a flipped frame (errors of 50+) through.
MP4_MEAN_ABS_TOLERANCE = 5.0


def _smooth_frames(count: int, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 20 * t)], -1) for t in range(count)
    ]
    return np.asarray(frames, dtype=np.uint8)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_mp4_round_trip(tmp_path, monkeypatch, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec}")
    monkeypatch.setattr(video, "video_codec", lambda: codec)  # also exercise the fallback encoder
    frames = _smooth_frames(12, 48, 64)
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    decoded = read_mp4(path)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < MP4_MEAN_ABS_TOLERANCE


def test_mp4_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        write_mp4(tmp_path / "a.mp4", np.zeros((0, 16, 16, 3), np.uint8), fps=10)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "a.mp4", np.zeros((2, 16, 16, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\), got \(2, 16, 16\)"):
        write_mp4(tmp_path / "a.mp4", np.zeros((2, 16, 16), np.uint8), fps=10)
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "a.mp4", np.zeros((2, 15, 16, 3), np.uint8), fps=10)


def test_caption_keeps_shape_and_marks_outcome():
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    captioned = caption(frames, "lift the yellow cylinder", success=False)
    assert captioned.shape == frames.shape
    assert captioned[:, -2, -2, 0].min() > 100  # the failure strip is red
    assert not frames.any()  # the input is left alone


@pytest.fixture
def env():
    env = sim.make(sim.list_tasks()[0], cameras=(), render_size=(64, 64))
    yield env
    env.close()


def test_expert_episode_succeeds(env):
    result = run_episode(env, sim.make_expert(env), seed=0, record_video=True)
    assert result.success
    assert 0 < result.length <= env.unwrapped.max_steps
    assert result.task == sim.list_tasks()[0] and result.instruction
    assert result.frames.shape == (result.length + 1, 64, 64, 3)


def test_noisy_expert_episode_replays_exactly(env):
    # The report records a failure's video by replaying its seed, so a seeded episode must repeat exactly.
    runs = [run_episode(env, sim.make_expert(env, noise=0.5, seed=3), seed=3) for _ in range(2)]
    assert (runs[0].success, runs[0].length) == (runs[1].success, runs[1].length)


class _WrongShapePolicy:
    def reset(self):
        pass

    def infer(self, obs):
        return {"actions": np.zeros(7, np.float32)}


def test_wrong_action_shape_is_named(env):
    with pytest.raises(ValueError, match=r"shape \(7,\); expected \(K, 7\)"):
        run_episode(env, _WrongShapePolicy(), seed=0)


def test_app_end_to_end(tmp_path):
    command = [
        sys.executable,
        "-m",
        "policies.evaluation.experts",
        "task=[PickUp]",
        "episodes_per_task=2",
        f"out={tmp_path}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| PickUp | 100% [34%-100%] (2/2) |" in done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    entry = results["tasks"]["PickUp"]
    assert entry["success_rate"] == 1.0 and entry["episodes"] == 2 and entry["mean_length"] > 0
    assert results["mean_success"] == 1.0
    protocol = results["protocol"]
    for key in ("seed", "episodes", "max_steps", "image_size", "render", "control_hz", "versions"):
        assert key in protocol
    assert protocol["max_steps"]["PickUp"] > 0
    assert set(protocol["versions"]) == {"mujoco", "gymnasium", "numpy"}
    assert "| PickUp |" in (tmp_path / "report.md").read_text()
    video = read_mp4(tmp_path / entry["video"])
    assert video.shape[1:] == (256, 256, 3) and len(video) > entry["mean_length"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "results.json", "videos"]


def _config(*overrides):
    import policies.evaluation.experts  # noqa: F401  (registers the config schema)

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose("sim_report", overrides=list(overrides))


def test_unknown_task_lists_available_tasks():
    with pytest.raises(ValueError, match=r"unknown tasks \['NoSuchTask'\]; available tasks: .*PickUp"):
        OmegaConf.to_object(_config("task=[NoSuchTask]"))


def test_unknown_option_is_an_error():
    with pytest.raises(ConfigCompositionException, match="epsiodes"):
        _config("epsiodes=3")


def test_default_config_means_all_tasks():
    config = OmegaConf.to_object(_config())
    assert config.task == sim.list_tasks() and config.episodes_per_task == 20 and config.videos
