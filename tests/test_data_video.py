"""PyAV encode, remux-append, truncate and decode of dataset videos (vla/data/video.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import frame_pattern

from vla.data.layout import (
    DatasetError,
)
from vla.data.stats import pixel_histogram
from vla.data.video import (
    append_video,
    decode_frames,
    encode_video,
    truncate_video,
    video_duration,
)

CAMERAS = ("agentview", "wrist")
# Measured on the synthetic quadrant pattern at 32x32 (libx264, CRF 23): mean absolute error 2.1 grey levels
# over all frames, at most 3.2 for one frame (chroma at block edges); 2.0 on a smooth 64x64 gradient.
# 4 leaves room for encoder versions while a swapped channel or a wrong frame (errors of 16+) fails.
FRAME_MEAN_ABS_TOLERANCE = 4.0


def test_smooth_video_round_trip_error(tmp_path):
    y, x = np.mgrid[0:64, 0:64]
    frames = np.stack([np.stack([x * 4, y * 4, np.full_like(x, 10 * t)], -1) for t in range(12)]).astype(
        np.uint8
    )
    video = encode_video(frames, tmp_path / "smooth.mp4", fps=15)
    decoded = decode_frames(video.path, np.arange(12) / 15)
    assert np.abs(decoded.astype(int) - frames).mean() < 3.0  # measured: 2.0
    np.testing.assert_array_equal(video.histogram, pixel_histogram(frames))
    assert video_duration(video.path) == pytest.approx(12 / 15, abs=1e-9)


def test_append_video_matches_each_episodes_own_decoding(tmp_path):
    lengths = [1, 7, 2, 5, 3, 11, 1, 4]
    combined = tmp_path / "all.mp4"
    start = 0.0
    for episode, length in enumerate(lengths):
        frames = np.stack([frame_pattern(episode, t, 0, (32, 48)) for t in range(length)])
        own = encode_video(frames, tmp_path / f"ep{episode}.mp4", fps=30)
        from_timestamp = append_video(combined, own.path)
        assert from_timestamp == pytest.approx(start, abs=1e-9)
        start += length / 30
        assert video_duration(combined) == pytest.approx(start, abs=1e-9)
    start = 0.0
    for episode, length in enumerate(lengths):
        times = np.arange(length) / 30
        alone = decode_frames(tmp_path / f"ep{episode}.mp4", times)
        inside = decode_frames(combined, start + times.astype(np.float32))
        np.testing.assert_array_equal(inside, alone)
        start += length / 30
    # Any order, repeats, and a time between frames is an error naming the file.
    np.testing.assert_array_equal(
        decode_frames(combined, [0.1, 0.0, 0.1]), decode_frames(combined, [0.1, 0.0, 0.1])
    )
    with pytest.raises(DatasetError, match=r"all\.mp4.*no frame within"):
        decode_frames(combined, [0.5 / 30])


def test_decode_frames_random_access_matches_sequential_decoding(tmp_path):
    frames = np.stack([frame_pattern(t // 16, t, 0, (32, 32)) for t in range(90)])
    video = encode_video(frames, tmp_path / "long.mp4", fps=30)
    sequential = decode_frames(video.path, np.arange(90) / 30)
    order = np.random.default_rng(1).permutation(90)[:40]  # jumps back and forth, some over a second
    np.testing.assert_array_equal(decode_frames(video.path, order / 30), sequential[order])
    with pytest.raises(DatasetError, match=r"missing\.mp4: video file not found"):
        decode_frames(tmp_path / "missing.mp4", [0.0])


def test_append_video_refuses_other_encodings(tmp_path):
    small = encode_video(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "a.mp4", fps=10)
    large = encode_video(np.zeros((2, 32, 32, 3), np.uint8), tmp_path / "b.mp4", fps=10)
    other_fps = encode_video(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "c.mp4", fps=7)
    append_video(tmp_path / "all.mp4", small.path)
    for video in (large, other_fps):
        with pytest.raises(DatasetError, match=r"all\.mp4: cannot append"):
            append_video(tmp_path / "all.mp4", video.path)
    assert video_duration(tmp_path / "all.mp4") == pytest.approx(0.2)


def test_truncate_video_keeps_frames_before_the_cut(tmp_path):
    frames = np.stack([frame_pattern(0, t, 0, (32, 32)) for t in range(9)])
    video = encode_video(frames, tmp_path / "v.mp4", fps=10)
    before = decode_frames(video.path, np.arange(5) / 10)
    truncate_video(video.path, 0.5)
    assert video_duration(video.path) == pytest.approx(0.5)
    np.testing.assert_array_equal(decode_frames(video.path, np.arange(5) / 10), before)
