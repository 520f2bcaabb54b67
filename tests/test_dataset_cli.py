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


def test_stats_recomputes_the_writers_statistics_exactly(dataset, capsys):
    """The image statistics too: from the recorded raw-frame histograms, not the decoded videos (whose
    pixels are the codec's: a recording's q99 moved by up to 0.14 when they were)."""
    path = dataset / "meta" / "stats.json"
    before = path.read_text()
    path.write_text("{}")
    assert main(["stats", str(dataset)]) == 0
    assert "image statistics from the recorded pixel histograms" in capsys.readouterr().out
    assert path.read_text() == before


def _edit_stats(dataset, feature: str, name: str, edit) -> None:
    path = dataset / "meta" / "stats.json"
    stats = json.loads(path.read_text())
    stats[feature][name] = edit(np.asarray(stats[feature][name])).tolist()
    path.write_text(json.dumps(stats))


def _edit_episodes_table(dataset, edit) -> None:
    """Rewrite meta/episodes' (one) parquet file as ``edit(table)`` returns it."""
    import pyarrow.parquet as pq

    (path,) = (dataset / "meta" / "episodes").rglob("*.parquet")
    pq.write_table(edit(pq.read_table(path)), path)


@pytest.mark.parametrize(
    "feature, name, edit, message",
    [
        (
            "action",
            "mean",
            lambda v: np.where(np.arange(len(v)) == 2, 99.0, v),
            "'action' 'mean' is 99, the data's",
        ),
        ("observation.state", "q99", lambda v: v + 0.5, "'observation.state' 'q99' is"),
        ("index", "count", lambda v: v + 1, "'index' 'count' is"),
        ("observation.images.wrist", "q50", lambda v: v + 0.1, "'observation.images.wrist' 'q50' is"),
    ],
)
def test_validate_checks_each_statistic_against_the_data(dataset, capsys, feature, name, edit, message):
    _edit_stats(dataset, feature, name, edit)
    assert main(["validate", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert f"problem: meta/stats.json: {message}" in out and "INVALID" in out


def test_validate_checks_each_episodes_statistics_and_pixel_counts(dataset, capsys):
    import pyarrow as pa

    def edit(table):
        name = "stats/action/max"
        values = table.column(name).to_pylist()
        values[1] = [v + 1 for v in values[1]]
        table = table.set_column(
            table.column_names.index(name), name, pa.array(values, table.schema.field(name).type)
        )
        name = "vla/pixel_histogram/observation.images.agentview"
        counts = table.column(name).to_pylist()
        counts[2][0][0] += 1
        return table.set_column(
            table.column_names.index(name), name, pa.array(counts, table.schema.field(name).type)
        )

    _edit_episodes_table(dataset, edit)
    assert main(["validate", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "problem: meta/episodes: episode 1 'stats/action' 'max' is" in out
    assert "episode 2 'vla/pixel_histogram/observation.images.agentview' counts" in out


def test_another_writers_dataset_has_its_image_statistics_checked_for_form(dataset, capsys):
    """Without the raw-frame histograms (a dataset vla-stack did not write), image statistics cannot be
    recomputed without the codec's error: validate checks their form, stats decodes the videos."""
    _edit_episodes_table(
        dataset, lambda t: t.drop_columns([n for n in t.column_names if n.startswith("vla/pixel_histogram/")])
    )
    assert main(["validate", str(dataset)]) == 0
    capsys.readouterr()
    _edit_stats(dataset, "observation.images.agentview", "mean", lambda v: v + 2)
    assert main(["validate", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "problem: meta/stats.json: 'observation.images.agentview' 'mean' is outside [min, max]" in out
    assert main(["stats", str(dataset)]) == 0
    assert "image statistics from the decoded videos" in capsys.readouterr().out
    assert main(["validate", str(dataset)]) == 0


def test_stats_is_refused_while_a_writer_holds_the_dataset(dataset, capsys):
    from vla.data.lock import DatasetLock

    path = dataset / "meta" / "stats.json"
    before = path.read_text()
    with DatasetLock(dataset):  # as a recorder topping the dataset up would hold it
        assert main(["stats", str(dataset)]) == 1
    assert "another process" in capsys.readouterr().err
    assert path.read_text() == before  # untouched
    assert main(["stats", str(dataset)]) == 0  # once the writer is gone
