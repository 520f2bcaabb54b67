"""vla-dataset info | validate | view | stats on real and broken datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla.data.cli import main
from vla.data.meta import load_meta
from vla.data.video import video_duration


@pytest.fixture
def dataset(make_dataset):
    return make_dataset(episodes=3)


def test_info_summarizes_the_dataset(dataset, capsys):
    assert main(["info", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "3 episodes" in out and "observation.images.agentview" in out and "action q99" in out


def test_validate_accepts_a_sound_dataset(dataset, capsys):
    assert main(["validate", str(dataset), "--full"]) == 0
    assert "OK: 3 episodes" in capsys.readouterr().out


def test_validate_names_a_missing_video_file(dataset, capsys):
    video = next((dataset / "videos" / "observation.images.wrist").rglob("*.mp4"))
    video.unlink()
    assert main(["validate", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "observation.images.wrist" in out and "missing" in out


def test_validate_names_inconsistent_totals(dataset, capsys):
    info_path = dataset / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] += 5
    info_path.write_text(json.dumps(info))
    assert main(["validate", str(dataset)]) == 1
    assert "total_frames" in capsys.readouterr().out


def test_a_v21_dataset_gets_a_message_about_converting(dataset, capsys):
    info_path = dataset / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v2.1"
    info_path.write_text(json.dumps(info))
    assert main(["info", str(dataset)]) == 1
    err = capsys.readouterr().err
    assert "v2.1" in err and "convert" in err


def test_view_renders_every_frame_of_an_episode(dataset, tmp_path):
    out = tmp_path / "episode.mp4"
    assert main(["view", str(dataset), "--episode", "1", "--out", str(out)]) == 0
    meta = load_meta(dataset)
    assert video_duration(out) == pytest.approx(meta.episodes[1]["length"] / meta.fps, abs=1e-3)


def test_view_rejects_an_episode_that_does_not_exist(dataset, tmp_path, capsys):
    assert main(["view", str(dataset), "--episode", "7", "--out", str(tmp_path / "x.mp4")]) == 1
    assert "episode must be in [0, 3)" in capsys.readouterr().err


def test_stats_recomputes_the_same_numeric_statistics(dataset):
    path = dataset / "meta" / "stats.json"
    before = json.loads(path.read_text())
    path.write_text("{}")
    assert main(["stats", str(dataset)]) == 0
    after = json.loads(path.read_text())
    assert set(after) == set(before)
    for feature in ("observation.state", "action"):
        for name, value in before[feature].items():
            np.testing.assert_allclose(after[feature][name], value, rtol=1e-6, err_msg=f"{feature} {name}")
    # Image statistics come from the decoded video: within the codec's error of the writer's.
    for key in ("observation.images.agentview", "observation.images.wrist"):
        np.testing.assert_allclose(after[key]["mean"], before[key]["mean"], atol=0.02)


def test_stats_is_refused_while_a_writer_holds_the_dataset(dataset, capsys):
    from vla.data.lock import DatasetLock

    path = dataset / "meta" / "stats.json"
    before = path.read_text()
    with DatasetLock(dataset):  # as a recorder topping the dataset up would hold it
        assert main(["stats", str(dataset)]) == 1
    assert "another process" in capsys.readouterr().err
    assert path.read_text() == before  # untouched
    assert main(["stats", str(dataset)]) == 0  # once the writer is gone
