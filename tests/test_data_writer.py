"""DatasetWriter, video remuxing, statistics and metadata validation for LeRobotDataset v3.0 (CPU, seconds)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TASKS, action_values, frame_pattern, read_pattern, state_values, synthetic_episode

from vla.data import writer as writer_module
from vla.data.layout import (
    ACTION,
    EPISODES_PATH,
    INFO_PATH,
    QUANTILES,
    STATE,
    STATS_PATH,
    TASKS_PATH,
    DatasetError,
)
from vla.data.meta import load_meta
from vla.data.stats import RunningStats, feature_stats, image_stats_from_histogram, pixel_histogram
from vla.data.video import (
    append_video,
    decode_frames,
    encode_video,
    truncate_video,
    video_duration,
)
from vla.data.writer import DatasetWriter, Episode

CAMERAS = ("agentview", "wrist")
# Measured on the synthetic quadrant pattern at 32x32 (libx264, CRF 23): mean absolute error 2.1 grey levels
# over all frames, at most 3.2 for one frame (chroma at block edges); 2.0 on a smooth 64x64 gradient.
# 4 leaves room for encoder versions while a swapped channel or a wrong frame (errors of 16+) fails.
FRAME_MEAN_ABS_TOLERANCE = 4.0


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


def test_round_trip_numeric_columns_are_exact(make_dataset):
    lengths = [5, 9, 1, 4]
    meta = load_meta(make_dataset(lengths=lengths))
    info = meta.info
    assert (info["codebase_version"], info["total_episodes"], info["total_frames"]) == ("v3.0", 4, 19)
    assert info["total_tasks"] == 2 and info["splits"] == {"train": "0:4"}
    assert meta.tasks == list(TASKS)
    rows = read_rows(meta)
    assert list(rows["index"]) == list(range(19))
    start = 0
    for episode, length in enumerate(lengths):
        row = meta.episodes[episode]
        assert (row["episode_index"], row["length"], row["tasks"]) == (episode, length, [TASKS[episode % 2]])
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, start + length)
        assert (row["vla/seed"], row["vla/success"]) == (episode, episode % 2 == 0)
        part = slice(start, start + length)
        np.testing.assert_array_equal(rows[STATE][part], state_values(episode, length, 17))
        np.testing.assert_array_equal(rows[ACTION][part], action_values(episode, length, 7))
        np.testing.assert_array_equal(rows["frame_index"][part], np.arange(length))
        np.testing.assert_array_equal(rows["episode_index"][part], episode)
        np.testing.assert_array_equal(rows["task_index"][part], episode % 2)
        assert rows["timestamp"].dtype == np.float32
        np.testing.assert_array_equal(rows["timestamp"][part], (np.arange(length) / 10).astype(np.float32))
        start += length


def test_data_parquet_schema_is_lerobots(make_dataset):
    meta = load_meta(make_dataset(episodes=1, lengths=[3]))
    schema = pq.read_schema(meta.data_files()[0])
    # hf datasets stores LeRobot's Sequence(float32, length=D) as a fixed-size list.
    assert schema.field(STATE).type == pa.list_(pa.float32(), 17)
    assert schema.field(ACTION).type == pa.list_(pa.float32(), 7)
    assert schema.field("timestamp").type == pa.float32()
    for name in ("frame_index", "episode_index", "index", "task_index"):
        assert schema.field(name).type == pa.int64()
    features = meta.features
    assert features["observation.images.wrist"]["info"]["video.codec"] == "h264"
    assert features["observation.images.wrist"]["shape"] == [32, 32, 3]


def test_decoded_frames_are_the_right_ones_within_tolerance(make_dataset):
    meta = load_meta(make_dataset(lengths=[20, 3, 7]))
    for episode in meta.episodes:
        for camera_index, key in enumerate(meta.camera_keys):
            frames = decode_episode(meta, episode, key)
            for frame, image in enumerate(frames):
                assert read_pattern(image) == (episode["episode_index"], frame, camera_index)
                original = frame_pattern(episode["episode_index"], frame, camera_index, (32, 32))
                error = np.abs(image.astype(int) - original).mean()
                assert error < FRAME_MEAN_ABS_TOLERANCE, (episode["episode_index"], key, frame, error)


def test_av1_dataset_round_trip(make_dataset):
    meta = load_meta(make_dataset(lengths=[4, 7, 3], cameras=("agentview",), codec="libsvtav1"))
    assert meta.features["observation.images.agentview"]["info"]["video.codec"] == "av1"
    for episode in meta.episodes:
        frames = decode_episode(meta, episode, "observation.images.agentview")
        index = episode["episode_index"]
        assert [read_pattern(image) for image in frames] == [(index, t, 0) for t in range(len(frames))]
        original = np.stack([frame_pattern(index, t, 0, (32, 32)) for t in range(len(frames))])
        assert np.abs(frames.astype(int) - original).mean() < FRAME_MEAN_ABS_TOLERANCE


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


def _places(meta, prefix: str) -> list[tuple[int, int]]:
    return [(row[f"{prefix}/chunk_index"], row[f"{prefix}/file_index"]) for row in meta.episodes]


def test_files_roll_over_past_the_size_limit(make_dataset):
    lengths = [6, 5, 7, 4, 3, 8]
    limit_mb = 0.004
    root = make_dataset(lengths=lengths, data_files_size_in_mb=limit_mb, video_files_size_in_mb=limit_mb)
    meta = load_meta(root)
    for prefix in ("data", "videos/observation.images.wrist"):
        places = _places(meta, prefix)
        assert places == sorted(places) and len(set(places)) >= 2, (prefix, places)
        assert max(places.count(place) for place in places) >= 2, (prefix, places)  # files are shared
    for path in meta.data_files():  # a file is over the limit only if one episode alone is
        episodes_in_file = sum(meta.data_file(*place) == path for place in _places(meta, "data"))
        assert episodes_in_file == 1 or path.stat().st_size <= limit_mb * 1024**2
    rows = read_rows(meta)
    assert list(rows["index"]) == list(range(sum(lengths)))
    for row in meta.episodes:
        episode, length = row["episode_index"], row["length"]
        part = slice(row["dataset_from_index"], row["dataset_to_index"])
        np.testing.assert_array_equal(rows[STATE][part], state_values(episode, length, 17))
        frames = decode_episode(meta, row, "observation.images.wrist")
        assert [read_pattern(image) for image in frames] == [(episode, t, 1) for t in range(length)]


def test_chunk_index_advances_every_chunks_size_files(make_dataset):
    root = make_dataset(
        lengths=[2] * 5, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6, chunks_size=2
    )
    meta = load_meta(root)
    expected = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert _places(meta, "data") == expected
    assert _places(meta, "videos/observation.images.agentview") == expected
    assert (root / "data/chunk-002/file-000.parquet").is_file()
    assert (root / "videos/observation.images.agentview/chunk-001/file-001.mp4").is_file()
    assert [read_pattern(f)[:2] for f in decode_episode(meta, meta.episodes[3], meta.camera_keys[0])] == [
        (3, 0),
        (3, 1),
    ]


def _staged(tmp_path, episode: int, length: int, **kwargs) -> Episode:
    return synthetic_episode(episode, length, CAMERAS, (32, 32), 17, 7, 10, tmp_path, seed=0, **kwargs)


def _snapshot(root) -> dict:
    """Everything a reader sees of the dataset at ``root``."""
    meta = load_meta(root)
    frames = {key: [decode_episode(meta, row, key) for row in meta.episodes] for key in meta.camera_keys}
    return {
        "info": meta.info,
        "stats": json.loads((root / STATS_PATH).read_text()),
        "tasks": pq.read_table(root / TASKS_PATH).to_pylist(),
        "episodes": meta.episodes,
        "rows": {name: values.tolist() for name, values in read_rows(meta).items()},
        "frames": {key: [f.tolist() for f in episodes] for key, episodes in frames.items()},
        "files": sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
    }


def _disk_bytes(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_append_after_open(make_dataset, tmp_path):
    root = make_dataset(lengths=[3, 4])
    writer = DatasetWriter.open(root, fps=10, cameras=CAMERAS, image_size=(32, 32))
    assert writer.add_episode(_staged(tmp_path, 2, 5)) == 2
    meta = load_meta(root)
    assert (meta.total_episodes, meta.total_frames) == (3, 12)
    rows = read_rows(meta)
    np.testing.assert_array_equal(rows[STATE][7:], state_values(2, 5, 17))
    assert meta.stats[STATE]["count"].tolist() == [12]
    np.testing.assert_allclose(meta.stats[STATE]["q90"], np.quantile(rows[STATE], 0.9, axis=0), rtol=1e-6)


def test_open_refuses_another_setup(make_dataset):
    root = make_dataset(episodes=1)
    with pytest.raises(DatasetError, match=r"info\.json: cameras is \('agentview', 'wrist'\)"):
        DatasetWriter.open(root, cameras=("agentview",))
    with pytest.raises(DatasetError, match="image_size"):
        DatasetWriter.open(root, image_size=(64, 64))
    with pytest.raises(DatasetError, match="not empty"):
        DatasetWriter.create(
            root, fps=10, cameras=CAMERAS, image_size=(32, 32), state_names=["a"], action_names=["b"]
        )


CRASH_POINTS = ["append_video", "episodes_table", "tasks_table", "write_stats", "info.json"]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
@pytest.mark.parametrize("roll_over", [False, True], ids=["same-file", "new-file"])
def test_crash_in_commit_window_is_repaired_on_open(make_dataset, tmp_path, monkeypatch, crash_at, roll_over):
    limit = 0.001 if roll_over else 100
    root = make_dataset(lengths=[4, 6], data_files_size_in_mb=limit, video_files_size_in_mb=limit)
    committed = _snapshot(root)
    writer = DatasetWriter.open(root)

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash

    def crash_on_info(path, obj):
        if str(path).endswith(INFO_PATH):
            raise Crash
        return real_write_json(path, obj)

    real_write_json = writer_module.write_json_atomic
    # A process that dies gets no chance to clean up: switch off the in-process rollback.
    monkeypatch.setattr(writer_module, "repair_uncommitted", lambda meta: [])
    if crash_at == "info.json":
        monkeypatch.setattr(writer_module, "write_json_atomic", crash_on_info)
    elif crash_at == "append_video":  # after the data parquet and the first camera's video
        real_append = writer_module.append_video
        calls = []

        def append_then_crash(dst, src):
            calls.append(dst)
            if len(calls) == 2:
                raise Crash
            return real_append(dst, src)

        monkeypatch.setattr(writer_module, "append_video", append_then_crash)
    else:
        monkeypatch.setattr(writer_module, crash_at, crash)
    before = _disk_bytes(root)
    with pytest.raises(Crash):
        writer.add_episode(_staged(tmp_path, 2, 5, task="a brand new task"))
    monkeypatch.undo()
    assert _disk_bytes(root) != before  # the crash left uncommitted bytes behind
    assert load_meta(root).total_episodes == 2  # readers see the committed dataset even before repair
    reopened = DatasetWriter.open(root)
    assert _snapshot(root) == committed
    assert reopened.add_episode(_staged(tmp_path, 2, 5)) == 2
    meta = load_meta(root)
    assert (meta.total_episodes, meta.total_frames, meta.tasks) == (3, 15, list(TASKS))
    assert [
        read_pattern(f) for f in decode_episode(meta, meta.episodes[2], "observation.images.agentview")
    ] == [(2, t, 0) for t in range(5)]


def test_failed_commit_rolls_back_in_process(make_dataset, tmp_path, monkeypatch):
    root = make_dataset(lengths=[4, 6])
    committed = _snapshot(root)
    writer = DatasetWriter.open(root)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writer_module, "episodes_table", broken)
    with pytest.raises(OSError, match="disk full"):
        writer.add_episode(_staged(tmp_path, 2, 5))
    monkeypatch.undo()
    assert _snapshot(root) == committed
    assert writer.add_episode(_staged(tmp_path, 2, 5)) == 2  # the same writer goes on


# -- bad input -----------------------------------------------------------------------------------------


def _replace(episode: Episode, **changes) -> Episode:
    fields = {
        "task": episode.task,
        "state": episode.state,
        "action": episode.action,
        "videos": episode.videos,
    }
    return Episode(**{**fields, "extra": episode.extra, **changes})


@pytest.fixture
def writer_and_episode(make_dataset, tmp_path):
    root = make_dataset(lengths=[3])
    return DatasetWriter.open(root), _staged(tmp_path, 1, 4), root


def _bad_state_nan(ep):
    state = ep.state.copy()
    state[2, 5] = np.nan
    return _replace(ep, state=state)


def _bad_action_inf(ep):
    action = ep.action.copy()
    action[3, 0] = np.inf
    return _replace(ep, action=action)


def _other_camera(ep, tmp_path):
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    return _replace(
        ep, videos={"agentview": ep.videos["agentview"], "left": encode_video(frames, tmp_path / "l.mp4", 10)}
    )


BAD_EPISODES = {
    "nan state": (
        _bad_state_nan,
        r"'observation\.state' has a non-finite value \(nan\) at frame 2, column 5",
    ),
    "inf action": (_bad_action_inf, r"'action' has a non-finite value \(inf\) at frame 3, column 0"),
    "length mismatch": (
        lambda ep: _replace(ep, action=ep.action[:3]),
        r"'observation\.state' has 4 frames but 'action' has 3",
    ),
    "state width": (
        lambda ep: _replace(ep, state=ep.state[:, :16]),
        r"'observation\.state' must have shape \(T, 17\)",
    ),
    "action rank": (lambda ep: _replace(ep, action=ep.action[:, 0]), r"'action' must have shape \(T, 7\)"),
    "empty": (lambda ep: _replace(ep, state=ep.state[:0], action=ep.action[:0]), "episode is empty"),
    "no task": (lambda ep: _replace(ep, task="  "), "non-empty instruction"),
    "missing camera": (lambda ep: _replace(ep, videos={"wrist": ep.videos["wrist"]}), r"cameras \['wrist'\]"),
    "extra type": (lambda ep: _replace(ep, extra={"seed": "7", "success": True}), "extra columns"),
    "extra value": (lambda ep: _replace(ep, extra={"seed": 1, "success": [1]}), "extra 'success' must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_EPISODES))
def test_bad_episodes_are_refused_and_leave_the_dataset_alone(writer_and_episode, case):
    writer, episode, root = writer_and_episode
    before = _disk_bytes(root)
    make_bad, message = BAD_EPISODES[case]
    with pytest.raises(ValueError, match=message):
        writer.add_episode(make_bad(episode))
    assert _disk_bytes(root) == before
    assert writer.add_episode(episode) == 1  # and the writer still works


def test_bad_videos_are_refused(writer_and_episode, tmp_path):
    writer, episode, _ = writer_and_episode
    small = encode_video(np.zeros((4, 16, 16, 3), np.uint8), tmp_path / "small.mp4", 10)
    with pytest.raises(ValueError, match=r"'observation\.images\.wrist' is 16x16, the dataset's is 32x32"):
        writer.add_episode(_replace(episode, videos={**episode.videos, "wrist": small}))
    short = encode_video(np.zeros((3, 32, 32, 3), np.uint8), tmp_path / "short.mp4", 10)
    with pytest.raises(ValueError, match="has 3 frames, state and action have 4"):
        writer.add_episode(_replace(episode, videos={**episode.videos, "wrist": short}))
    other_fps = encode_video(np.zeros((4, 32, 32, 3), np.uint8), tmp_path / "fps.mp4", 15)
    with pytest.raises(ValueError, match=r"at 15\.0 fps, the dataset stores h264 at 10 fps"):
        writer.add_episode(_replace(episode, videos={**episode.videos, "wrist": other_fps}))
    with pytest.raises(ValueError, match=r"cameras \['agentview', 'left'\]"):
        writer.add_episode(_other_camera(episode, tmp_path))
    crf = encode_video(np.zeros((4, 32, 32, 3), np.uint8), tmp_path / "crf.mp4", 10, crf=40)
    with pytest.raises(
        DatasetError, match=r"file-000\.mp4: cannot append .*crf\.mp4: codec parameters \(extradata\) differ"
    ):
        writer.add_episode(_replace(episode, videos={**episode.videos, "wrist": crf}))


# -- metadata validation -----------------------------------------------------------------------------------


def _edit_json(path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


@pytest.fixture
def dataset(make_dataset):
    return make_dataset(lengths=[3, 4])


def test_load_meta_helpers(dataset):
    meta = load_meta(dataset)
    assert meta.fps == 10 and meta.total_frames == 7 and meta.total_episodes == 2
    assert meta.camera_keys == ["observation.images.agentview", "observation.images.wrist"]
    assert meta.data_files() == [dataset / "data/chunk-000/file-000.parquet"]
    assert (
        meta.video_file("observation.images.wrist", 0, 3)
        == dataset / "videos/observation.images.wrist/chunk-000/file-003.mp4"
    )
    assert set(meta.require_stats(ACTION, ("q01", "q99"))) == {"q01", "q99"}


def test_missing_stats_key_names_file_and_key(dataset):
    _edit_json(dataset / STATS_PATH, lambda stats: stats[ACTION].pop("q01"))
    meta = load_meta(dataset)
    with pytest.raises(DatasetError, match=r"meta/stats\.json: missing stats key 'q01' for feature 'action'"):
        meta.require_stats(ACTION, ("q01", "q99"))
    with pytest.raises(DatasetError, match=r"meta/stats\.json: missing stats for feature 'nope'"):
        meta.require_stats("nope")


def _v21(info):
    info["codebase_version"] = "v2.1"


METADATA_DAMAGE = {
    "no info.json": (lambda root: (root / INFO_PATH).unlink(), r"meta/info\.json: file not found"),
    "corrupt info.json": (
        lambda root: (root / INFO_PATH).write_text("{not json"),
        r"meta/info\.json: corrupt JSON",
    ),
    "v2.1": (
        lambda root: _edit_json(root / INFO_PATH, _v21),
        r"info\.json: codebase_version is 'v2\.1': this is a LeRobotDataset v2\.x dataset.*convert_dataset_v21_to_v30",
    ),
    "no fps": (
        lambda root: _edit_json(root / INFO_PATH, lambda i: i.pop("fps")),
        r"info\.json: missing required key 'fps'",
    ),
    "no total_frames": (
        lambda root: _edit_json(root / INFO_PATH, lambda i: i.pop("total_frames")),
        "missing required key 'total_frames'",
    ),
    "feature without dtype": (
        lambda root: _edit_json(root / INFO_PATH, lambda i: i["features"][ACTION].pop("dtype")),
        r"info\.json: feature 'action' lacks 'dtype'",
    ),
    "no stats.json": (lambda root: (root / STATS_PATH).unlink(), r"meta/stats\.json: file not found"),
    "no tasks.parquet": (lambda root: (root / TASKS_PATH).unlink(), r"meta/tasks\.parquet: file not found"),
    "corrupt episodes": (
        lambda root: (root / EPISODES_PATH.format(chunk_index=0, file_index=0)).write_bytes(b"PAR1 garbage"),
        r"meta/episodes/chunk-000/file-000\.parquet: corrupt parquet",
    ),
    "no episodes": (
        lambda root: shutil.rmtree(root / "meta/episodes"),
        r"meta/episodes: no episode files, but info\.json says 2 episodes",
    ),
    "episodes without from_timestamp": (
        lambda root: pq.write_table(
            pq.read_table(root / EPISODES_PATH.format(chunk_index=0, file_index=0)).drop_columns(
                ["videos/observation.images.wrist/from_timestamp"]
            ),
            root / EPISODES_PATH.format(chunk_index=0, file_index=0),
        ),
        r"file-000\.parquet: missing column 'videos/observation\.images\.wrist/from_timestamp'",
    ),
}


@pytest.mark.parametrize("case", sorted(METADATA_DAMAGE))
def test_damaged_metadata_names_file_and_field(dataset, case):
    damage, message = METADATA_DAMAGE[case]
    damage(dataset)
    with pytest.raises(DatasetError, match=message):
        load_meta(dataset)
    with pytest.raises(DatasetError, match=message):
        DatasetWriter.open(dataset)


def test_missing_dataset_directory(tmp_path):
    with pytest.raises(DatasetError, match="dataset directory not found"):
        load_meta(tmp_path / "nowhere")


def test_tasks_parquet_reads_as_lerobots_task_index(dataset):
    pandas = pytest.importorskip("pandas")
    tasks = pandas.read_parquet(dataset / TASKS_PATH)
    assert list(tasks.index) == list(TASKS)
    assert tasks.loc[TASKS[1], "task_index"] == 1


def test_fps_is_stored_as_an_int_and_fractional_fps_is_refused(tmp_path):
    # LeRobot stores fps as an int, and its writer cannot append to a dataset whose fps is a float.
    names = {"state_names": ["s"], "action_names": ["a"]}
    DatasetWriter.create(tmp_path / "whole", fps=10.0, cameras=["cam"], image_size=(16, 16), **names)
    info = json.loads((tmp_path / "whole" / "meta" / "info.json").read_text())
    assert info["fps"] == 10 and isinstance(info["fps"], int)
    assert isinstance(info["features"]["observation.images.cam"]["info"]["video.fps"], int)
    with pytest.raises(ValueError, match="whole number"):
        DatasetWriter.create(tmp_path / "frac", fps=12.5, cameras=["cam"], image_size=(16, 16), **names)
