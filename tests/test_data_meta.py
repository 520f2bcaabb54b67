"""Loading and validating v3.0 metadata: every damaged file or field is named (vla/data/meta.py)."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from conftest import TASKS

from vla.data.layout import (
    ACTION,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    DatasetError,
)
from vla.data.meta import load_meta
from vla.data.writer import DatasetWriter

CAMERAS = ("agentview", "wrist")
# Measured on the synthetic quadrant pattern at 32x32 (libx264, CRF 23): mean absolute error 2.1 grey levels
# over all frames, at most 3.2 for one frame (chroma at block edges); 2.0 on a smooth 64x64 gradient.
# 4 leaves room for encoder versions while a swapped channel or a wrong frame (errors of 16+) fails.
FRAME_MEAN_ABS_TOLERANCE = 4.0


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
