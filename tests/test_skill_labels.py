"""Skill labels of recorded demonstrations: a vla-record episode replays exactly and each frame gets the
sub-instruction of the skill under way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policies.recording.app import RecordConfig, record
from policies.recording.relabel import skill_labels, write_skill_dataset
from policies.recording.settings import SETTINGS_PATH
from vla.data.dataset import VLADataset
from vla.data.meta import load_meta


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "ds"
    record(
        RecordConfig(
            task=["PlaceInBin", "PushToTarget"],
            episodes_per_task=1,
            out=str(out),
            noise=0.05,
            image_size=[32, 32],
        )
    )
    return out


def test_a_recorded_place_in_bin_episode_splits_into_its_pick_and_its_place(demos):
    meta = load_meta(demos)
    episode = next(i for i, row in enumerate(meta.episodes) if row["vla/sim_task"] == "PlaceInBin")
    labels = skill_labels(demos, episode)
    assert len(labels) == meta.episodes[episode]["length"]
    color = meta.episodes[episode]["tasks"][0].split()[2]  # "put the red cube ..." and its paraphrases
    pick, place = f"pick up the {color} cube", f"put the {color} cube in the bin"
    switch = labels.index(place)
    assert labels == [pick] * switch + [place] * (len(labels) - switch) and 5 < switch < len(labels) - 3


def test_a_one_skill_episode_is_that_skill_throughout(demos):
    meta = load_meta(demos)
    episode = next(i for i, row in enumerate(meta.episodes) if row["vla/sim_task"] == "PushToTarget")
    labels = skill_labels(demos, episode)
    assert len(set(labels)) == 1 and labels[0].startswith("push the ") and labels[0].endswith(" target")


def test_a_replay_that_leaves_the_recording_is_an_error_naming_the_frame(demos, tmp_path):
    path = demos / SETTINGS_PATH
    stored = json.loads(path.read_text())
    try:
        path.write_text(json.dumps({**stored, "settings": {**stored["settings"], "noise": 0.2}}))
        with pytest.raises(ValueError, match=r"the replay left the recording at frame 1 "):
            skill_labels(demos, 0)
    finally:
        path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"has episodes 0\.\.1, no episode 5"):
        skill_labels(demos, 5)


def test_a_skill_labelled_copy_trains_each_frame_on_its_skill_and_leaves_the_source_alone(demos, tmp_path):
    before = {path: path.read_bytes() for path in demos.rglob("*") if path.is_file() and path.name != ".lock"}
    out = write_skill_dataset(demos, tmp_path / "skills", progress=False)
    assert {path: path.read_bytes() for path in before} == before, "the source must not change"
    meta, dataset = load_meta(out), VLADataset(out)
    labels = [skill_labels(demos, episode) for episode in range(meta.total_episodes)]
    assert meta.tasks == list(dict.fromkeys(text for episode in labels for text in episode))
    assert [list(row["tasks"]) for row in meta.episodes] == [list(dict.fromkeys(e)) for e in labels]
    flat = [text for episode in labels for text in episode]
    table = dataset.table
    for t in range(len(dataset)):
        sample = dataset[t]
        assert sample["instruction"] == flat[t]
        # The goal is where the frame's skill ends: the last frame with its label in its episode.
        end = max(r for r in range(table.first[t], table.last[t] + 1) if flat[r] == flat[t])
        assert np.array_equal(sample["goal_state"].numpy(), table.state[end])
    assert not (out / SETTINGS_PATH).exists(), "vla-record must not top up a relabelled copy"
    with pytest.raises(FileExistsError, match="exists"):
        write_skill_dataset(demos, out, progress=False)


def test_the_command_line_writes_the_copy_and_says_why_not_in_one_line(demos, tmp_path, capsys):
    from policies.recording.relabel import main

    main([f"dataset={demos}", f"out={tmp_path / 'copy'}"])
    assert "skill instructions" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([f"dataset={demos}", f"out={tmp_path / 'copy'}"])
    error = capsys.readouterr().err.strip()
    assert "exists" in error and len(error.splitlines()) == 1
