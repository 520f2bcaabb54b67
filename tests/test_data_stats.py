"""Dataset statistics are exact over the whole dataset (vla/data/stats.py and the writer)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import frame_pattern, full_episode_rows, read_rows, state_values

from vla.data.layout import (
    ACTION,
    QUANTILES,
    STATE,
)
from vla.data.meta import load_meta
from vla.data.stats import RunningStats, feature_stats, image_stats_from_histogram, pixel_histogram

CAMERAS = ("agentview", "wrist")
# Measured on the synthetic quadrant pattern at 32x32 (libx264, CRF 23): mean absolute error 2.1 grey levels
# over all frames, at most 3.2 for one frame (chroma at block edges); 2.0 on a smooth 64x64 gradient.
# 4 leaves room for encoder versions while a swapped channel or a wrong frame (errors of 16+) fails.
FRAME_MEAN_ABS_TOLERANCE = 4.0


def test_stats_are_exact_over_all_rows(make_dataset):
    meta = load_meta(make_dataset(lengths=[3, 12, 5, 8]))
    rows = read_rows(meta)
    for feature in (STATE, ACTION):
        stats = meta.require_stats(feature)
        values = rows[feature].astype(np.float64)
        np.testing.assert_allclose(stats["mean"], values.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats["std"], values.std(0), rtol=1e-6)
        np.testing.assert_array_equal(stats["min"], values.min(0).astype(np.float32))
        np.testing.assert_array_equal(stats["max"], values.max(0).astype(np.float32))
        for name, q in QUANTILES.items():
            np.testing.assert_allclose(stats[name], np.quantile(values, q, axis=0), rtol=1e-6)
        assert stats["count"].tolist() == [28]
    # Averaging per-episode medians (what a careless merge does) gives another answer on this data.
    per_episode = [row[f"stats/{STATE}/q50"][0] for row in full_episode_rows(meta.root)]
    assert abs(np.mean(per_episode) - meta.stats[STATE]["q50"][0]) > 100


def test_image_stats_match_numpy_on_the_raw_frames(make_dataset):
    lengths = [4, 6]
    meta = load_meta(make_dataset(lengths=lengths))
    for camera_index, key in enumerate(meta.camera_keys):
        frames = np.concatenate(
            [
                np.stack([frame_pattern(episode, t, camera_index, (32, 32)) for t in range(length)])
                for episode, length in enumerate(lengths)
            ]
        )
        pixels = frames.reshape(-1, 3).astype(np.float64) / 255  # (N, 3)
        stats = meta.require_stats(key)
        assert stats["mean"].shape == (3, 1, 1)
        np.testing.assert_allclose(stats["mean"].ravel(), pixels.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats["std"].ravel(), pixels.std(0), rtol=1e-5)
        for name, q in QUANTILES.items():
            np.testing.assert_allclose(stats[name].ravel(), np.quantile(pixels, q, axis=0), rtol=1e-6)
        assert stats["count"].tolist() == [10]


def test_histogram_quantiles_equal_numpys(tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(5, 6, 4, 3)).astype(np.uint8)
    frames[..., 1] = rng.integers(100, 110, size=(5, 6, 4))  # ties between levels
    stats = image_stats_from_histogram(pixel_histogram(frames), 5)
    pixels = frames.reshape(-1, 3) / 255
    for name, q in QUANTILES.items():
        np.testing.assert_allclose(stats[name].ravel(), np.quantile(pixels, q, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["min"].ravel(), pixels.min(0), rtol=1e-6)


def test_episode_stats_columns(make_dataset):
    root = make_dataset(lengths=[4, 7])
    row = full_episode_rows(root)[1]
    assert not any(
        name.startswith("stats/") for name in load_meta(root).episodes[1]
    )  # kept out, as LeRobot does
    expected = feature_stats(state_values(1, 7, 17))
    for name, value in expected.items():
        np.testing.assert_allclose(row[f"stats/{STATE}/{name}"], value, rtol=1e-6)
    assert np.asarray(row["stats/observation.images.wrist/mean"]).shape == (3, 1, 1)
    assert row["stats/observation.images.wrist/count"] == [7]


def test_running_stats_equal_numpy_on_the_union():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 4)).astype(np.float32) for n in (1, 6, 13, 2)]
    parts.append(np.round(rng.normal(size=(9, 4)), 1).astype(np.float32))  # ties across episodes
    running = RunningStats.of(parts[0])
    for part in parts[1:]:
        running = running.merged(RunningStats.of(part))
    union = np.concatenate(parts).astype(np.float64)
    stats = running.stats()
    for name, q in QUANTILES.items():
        np.testing.assert_allclose(stats[name], np.quantile(union, q, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["mean"], union.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats["std"], union.std(0), rtol=1e-6)
    np.testing.assert_array_equal(stats["min"], union.min(0).astype(np.float32))
    np.testing.assert_array_equal(stats["max"], union.max(0).astype(np.float32))
    assert stats["count"].tolist() == [31]


def test_nan_in_stats_input_names_the_feature_and_row():
    values = np.zeros((4, 3), np.float32)
    values[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"'action'.*row 2, column 1"):
        feature_stats(values, ACTION)
