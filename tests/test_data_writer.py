"""DatasetWriter: round trips, roll-over, atomic commits and crash repair, appending, bad episodes (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    TASKS,
    action_values,
    decode_episode,
    frame_pattern,
    read_pattern,
    read_rows,
    state_values,
    synthetic_episode,
)

from vla.data import writer as writer_module
from vla.data.layout import (
    ACTION,
    INFO_PATH,
    STATE,
    STATS_PATH,
    TASKS_PATH,
    DatasetError,
)
from vla.data.meta import load_meta
from vla.data.video import (
    encode_video,
)
from vla.data.writer import DatasetWriter, Episode

CAMERAS = ("agentview", "wrist")
# Measured on the synthetic quadrant pattern at 32x32 (libx264, CRF 23): mean absolute error 2.1 grey levels
# over all frames, at most 3.2 for one frame (chroma at block edges); 2.0 on a smooth 64x64 gradient.
# 4 leaves room for encoder versions while a swapped channel or a wrong frame (errors of 16+) fails.
FRAME_MEAN_ABS_TOLERANCE = 4.0


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
    writer.close()  # the dead process's lock dies with it
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


def test_fps_is_stored_as_an_int_and_fractional_fps_is_refused(tmp_path):
    # LeRobot stores fps as an int, and its writer cannot append to a dataset whose fps is a float.
    names = {"state_names": ["s"], "action_names": ["a"]}
    DatasetWriter.create(tmp_path / "whole", fps=10.0, cameras=["cam"], image_size=(16, 16), **names)
    info = json.loads((tmp_path / "whole" / "meta" / "info.json").read_text())
    assert info["fps"] == 10 and isinstance(info["fps"], int)
    assert isinstance(info["features"]["observation.images.cam"]["info"]["video.fps"], int)
    with pytest.raises(ValueError, match="whole number"):
        DatasetWriter.create(tmp_path / "frac", fps=12.5, cameras=["cam"], image_size=(16, 16), **names)
