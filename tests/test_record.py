"""vla-record: demonstrations in, a LeRobotDataset v3.0 out; resumable, parallel, and safe to kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from policies.recording.app import RecordConfig, record
from vla.data.checks import validate
from vla.data.layout import DatasetError
from vla.data.lock import DatasetLocked
from vla.data.meta import load_meta
from vla.data.writer import DatasetWriter

SMALL = {"image_size": [32, 32]}


def _tasks(root: Path) -> Counter:
    return Counter(row["vla/sim_task"] for row in load_meta(root).episodes)


def test_records_the_requested_episodes_per_task(tmp_path):
    out = tmp_path / "demos"
    added = record(RecordConfig(task=["PickUp", "PressButton"], episodes_per_task=2, out=str(out), **SMALL))
    assert added == {"PickUp": 2, "PressButton": 2}
    meta = load_meta(out)
    assert meta.total_episodes == 4 and _tasks(out) == {"PickUp": 2, "PressButton": 2}
    assert all(row["vla/success"] == 1 for row in meta.episodes)
    assert meta.total_frames == sum(row["length"] for row in meta.episodes)
    instructions = {task for row in meta.episodes for task in row["tasks"]}
    assert any("button" in text for text in instructions) and any(
        "pick" in text or "lift" in text for text in instructions
    )
    assert not (out / ".vla_staging").exists()
    # The lock file and the stored settings do not bother the validator (nor LeRobot: it reads named files).
    assert (out / ".lock").is_file() and (out / "meta" / "recording.json").is_file()
    assert validate(meta) == []


def test_rerunning_tops_each_task_up_with_new_seeds(tmp_path):
    out = tmp_path / "demos"
    record(RecordConfig(task="PressButton", episodes_per_task=2, out=str(out), **SMALL))
    first_seeds = {row["vla/seed"] for row in load_meta(out).episodes}
    added = record(RecordConfig(task="PressButton", episodes_per_task=3, out=str(out), **SMALL))
    assert added == {"PressButton": 1}
    rows = load_meta(out).episodes
    assert len(rows) == 3 and len({row["vla/seed"] for row in rows}) == 3
    assert {row["vla/seed"] for row in rows} > first_seeds
    assert record(RecordConfig(task="PressButton", episodes_per_task=3, out=str(out), **SMALL)) == {
        "PressButton": 0
    }


def test_keep_success_drops_failures_and_keep_all_keeps_them(tmp_path):
    noisy = {"task": "PickUp", "episodes_per_task": 4, "noise": 0.3, **SMALL}
    record(RecordConfig(out=str(tmp_path / "all"), keep="all", **noisy))
    flags = [row["vla/success"] for row in load_meta(tmp_path / "all").episodes]
    assert len(flags) == 4 and 0 in flags, "noise 0.3 should make the PickUp expert fail sometimes"
    record(RecordConfig(out=str(tmp_path / "ok"), keep="success", **noisy))
    assert [row["vla/success"] for row in load_meta(tmp_path / "ok").episodes] == [1, 1, 1, 1]


def _content(root: Path) -> dict:
    """The episodes of a dataset in order (where each came from, its frames) and its data and video bytes."""
    meta = load_meta(root)
    keys = ("episode_index", "vla/sim_task", "vla/attempt", "vla/seed", "vla/success", "length")
    files = sorted(
        p for p in root.rglob("*") if p.suffix in (".parquet", ".mp4") and "episodes" not in p.parts
    )
    return {
        "episodes": [tuple(row[key] for key in keys) for row in meta.episodes],
        "files": {str(path.relative_to(root)): path.read_bytes() for path in files},
    }


def test_two_spawned_workers_keep_the_same_episodes_as_one(tmp_path):
    # Noise makes PickUp fail now and then, so keep=success must skip seeds the way one worker does; the
    # short PressButton episodes finish before the PickUp ones submitted ahead of them.
    options = {"task": ["PickUp", "PressButton"], "episodes_per_task": 3, "noise": 0.3, **SMALL}
    for workers in (1, 2):
        record(
            RecordConfig(out=str(tmp_path / f"w{workers}"), workers=workers, cameras=["agentview"], **options)
        )
    one, two = _content(tmp_path / "w1"), _content(tmp_path / "w2")
    assert Counter(row[1] for row in one["episodes"]) == {"PickUp": 3, "PressButton": 3}
    assert max(row[2] for row in one["episodes"] if row[1] == "PickUp") >= 3, "expected a failed PickUp seed"
    assert two["episodes"] == one["episodes"]
    assert two["files"] == one["files"]  # the same frames, state and action, byte for byte


def test_a_second_recorder_is_refused_and_the_first_ones_staged_episodes_stay(tmp_path):
    out = tmp_path / "demos"
    options = {"task": "PressButton", "out": str(out), **SMALL}
    record(RecordConfig(episodes_per_task=1, **options))
    staged = out / ".vla_staging" / "PressButton-1-agentview.mp4"
    with DatasetWriter.open(out):  # as the first recorder holds it while recording
        staged.parent.mkdir()
        staged.write_bytes(b"an episode waiting to be committed")
        with pytest.raises(DatasetLocked, match=rf"{out}: another process \(pid {os.getpid()} on "):
            record(RecordConfig(episodes_per_task=2, **options))
        assert staged.read_bytes() == b"an episode waiting to be committed"
    assert load_meta(out).total_episodes == 1
    assert record(RecordConfig(episodes_per_task=2, **options)) == {"PressButton": 1}  # once it is done


def test_a_top_up_with_other_settings_is_refused_naming_each_difference(tmp_path):
    out = tmp_path / "demos"
    options = {"task": "PressButton", "out": str(out), **SMALL}
    record(RecordConfig(episodes_per_task=1, **options))
    stored = json.loads((out / "meta" / "recording.json").read_text())
    assert stored["settings"]["noise"] == 0.0 and stored["settings"]["image_size"] == [32, 32]
    with pytest.raises(DatasetError, match="recorded with other settings") as refused:
        record(RecordConfig(episodes_per_task=2, noise=0.1, seed=7, **options))
    message = str(refused.value)
    assert "noise 0.0 (recorded) vs 0.1 (now)" in message and "seed 0 (recorded) vs 7 (now)" in message
    assert "new out=" in message and "labels" not in message
    assert load_meta(out).total_episodes == 1
    assert record(RecordConfig(episodes_per_task=2, **options)) == {"PressButton": 1}  # same settings


def test_a_dataset_recorded_before_settings_were_stored_is_not_topped_up(tmp_path):
    out = tmp_path / "demos"
    options = {"task": "PressButton", "out": str(out), **SMALL}
    record(RecordConfig(episodes_per_task=1, **options))
    (out / "meta" / "recording.json").unlink()
    with pytest.raises(DatasetError, match=r"no meta/recording\.json: it was recorded before .* new out="):
        record(RecordConfig(episodes_per_task=2, **options))
    with pytest.warns(UserWarning, match="settings cannot be checked"):
        assert record(RecordConfig(episodes_per_task=1, **options)) == {"PressButton": 0}  # nothing to add
    assert load_meta(out).total_episodes == 1


def test_noisy_demonstrations_record_the_experts_intended_actions_unless_asked_otherwise():
    import sim
    from policies.rollout import run_episode

    env = sim.make("OpenDrawer", image_size=(32, 32))
    runs = {
        labels: run_episode(
            env, sim.make_expert(env, noise=0.3, seed=3), 3, record_steps=True, executed_labels=labels
        ).steps
        for labels in (False, True)
    }
    intended, executed = runs[False].actions, runs[True].actions
    assert np.array_equal(runs[False].state, runs[True].state)  # the same noisy episode both times
    # Executed = intended + the expert's seeded noise (translation shown; it is clipped by speed already),
    # and the gripper command is never noised.
    noise = np.random.default_rng(3).normal(0.0, 0.3, (len(executed), 6)).astype(np.float32)
    assert np.allclose(executed[:, :3], np.clip(intended[:, :3] + noise[:, :3], -1, 1), atol=1e-6)
    assert np.array_equal(executed[:, 6], intended[:, 6])
    assert sim.contract.LABEL_ACTIONS not in sim.make_expert(env).infer(env.reset(seed=0)[0])


@pytest.mark.parametrize(
    "bad",
    [{"keep": "best"}, {"task": "FoldLaundry"}, {"workers": 0}, {"cameras": ["top"]}, {"labels": "clean"}],
)
def test_bad_options_are_rejected_with_the_reason(bad):
    with pytest.raises(ValueError):
        RecordConfig(**bad)


def test_recording_seeds_stay_out_of_the_evaluation_splits():
    with pytest.raises(ValueError, match="outside the recording split"):
        RecordConfig(seed=100_000)  # the first tuning seed
    with pytest.raises(ValueError, match="outside the recording split"):
        RecordConfig(seed=-1)


def test_killed_mid_recording_leaves_a_loadable_dataset_and_resumes(tmp_path):
    out = tmp_path / "demos"
    command = [
        sys.executable, "-m", "policies.recording.app", "task=PlaceInBin", "episodes_per_task=8",
        f"out={out}", "image_size=[32,32]",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    info = out / "meta" / "info.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if info.exists() and json.loads(info.read_text())["total_episodes"] >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    meta = load_meta(out)
    committed = meta.total_episodes
    assert 2 <= committed < 8, "kill the recorder while it still has episodes to go"
    assert meta.total_frames == sum(row["length"] for row in meta.episodes)

    added = record(RecordConfig(task="PlaceInBin", episodes_per_task=8, out=str(out), **SMALL))
    meta = load_meta(out)
    assert added == {"PlaceInBin": 8 - committed} and meta.total_episodes == 8
    seeds = [row["vla/seed"] for row in meta.episodes]
    assert len(set(seeds)) == 8
    assert np.all(np.diff([row["dataset_from_index"] for row in meta.episodes]) > 0)


# -- held-out instruction templates -----------------------------------------------------------------------
def test_held_out_templates_are_never_recorded_and_stored_with_the_settings(tmp_path):
    import sim

    out, held = tmp_path / "demos", sim.TASKS["PressButton"].instructions[-1]  # "hit the {color} button"
    options = {"task": "PressButton", "out": str(out), "cameras": ["agentview"], **SMALL}
    record(RecordConfig(episodes_per_task=6, holdout_templates="last", **options))
    rows = load_meta(out).episodes
    instructions = [text for row in rows for text in row["tasks"]]
    assert len(rows) == 6 and not any(text.startswith("hit the ") for text in instructions)
    # Those seeds do draw the held-out template without the option: the test means something.
    env = sim.make("PressButton", cameras=())
    plain = [env.reset(seed=row["vla/seed"])[1]["instruction"] for row in rows]
    env.close()
    assert any(text.startswith("hit the ") for text in plain)
    stored = json.loads((out / "meta" / "recording.json").read_text())["settings"]["holdout_templates"]
    assert stored == sim.holdout_templates("last") and stored["PressButton"] == held
    # A top-up with another choice is refused; "last" spelled out as a mapping is the same choice.
    with pytest.raises(DatasetError, match=r"holdout_templates \{.*\} \(recorded\) vs \{\} \(now\)"):
        record(RecordConfig(episodes_per_task=7, **options))
    with pytest.raises(DatasetError, match="holdout_templates"):
        record(RecordConfig(episodes_per_task=7, holdout_templates={"PressButton": 0}, **options))
    added = record(RecordConfig(episodes_per_task=7, holdout_templates={"PressButton": held}, **options))
    assert added == {"PressButton": 1}


def test_a_settings_file_from_before_held_out_templates_reads_as_none_held_out(tmp_path):
    out = tmp_path / "demos"
    options = {"task": "PressButton", "out": str(out), "cameras": ["agentview"], **SMALL}
    record(RecordConfig(episodes_per_task=1, **options))
    path = out / "meta" / "recording.json"
    stored = json.loads(path.read_text())
    assert stored["settings"].pop("holdout_templates") == {}
    path.write_text(json.dumps(stored))  # as vla-record wrote it before the setting existed
    with pytest.raises(DatasetError, match="holdout_templates"):
        record(RecordConfig(episodes_per_task=2, holdout_templates="last", **options))
    assert record(RecordConfig(episodes_per_task=2, **options)) == {"PressButton": 1}


@pytest.mark.parametrize(
    ("holdout", "message"),
    [
        ({"PickUp": "grab it"}, r"unknown PickUp instruction template 'grab it'; its templates: \['pick up"),
        ({"OpenDrawer": 0}, "'OpenDrawer', which is not a language task"),
        ("first", "must be none, last or a mapping"),
    ],
)
def test_bad_held_out_templates_are_rejected_naming_the_choices(holdout, message):
    with pytest.raises(ValueError, match=message):
        RecordConfig(holdout_templates=holdout)


def test_goals_per_scene_records_each_scene_once_per_goal(tmp_path):
    """Counterfactual demonstrations: the same layout with each button named, so only the words differ."""
    import re

    out = tmp_path / "demos"
    options = {"task": ["PressButton", "OpenDrawer"], "out": str(out), "cameras": ["agentview"], **SMALL}
    record(RecordConfig(episodes_per_task=6, goals_per_scene=3, **options))
    rows = load_meta(out).episodes
    buttons = [row for row in rows if row["vla/sim_task"] == "PressButton"]
    assert [row["vla/seed"] for row in buttons] == [0, 0, 0, 1, 1, 1]
    for scene in (buttons[:3], buttons[3:]):
        colours = {re.search(r"the (\w+) button", row["tasks"][0]).group(1) for row in scene}
        assert len(colours) == 3, "each scene is recorded once per button"
    # A task whose scene decides (one goal) records one episode per scene, as without the option.
    assert [row["vla/seed"] for row in rows if row["vla/sim_task"] == "OpenDrawer"] == list(range(6))
    stored = json.loads((out / "meta" / "recording.json").read_text())["settings"]
    assert stored["goals_per_scene"] == 3
    with pytest.raises(DatasetError, match="goals_per_scene"):
        record(RecordConfig(episodes_per_task=7, **options))


# -- Meta-World: the options it cannot honour are refused without Meta-World installed ---------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"task": ["metaworld/reach-v3", "PickUp"]},
            r"cannot record Meta-World .* and our tasks \['PickUp'\]",
        ),
        ({"task": "metaworld/reach-v9"}, r"valid names: .*metaworld/mt10.*metaworld/reach-v3"),
        ({"task": "reach-v3"}, "Meta-World ids: metaworld/"),  # the prefix forgotten
        ({"task": "metaworld/easy", "goals_per_scene": 2}, "goals_per_scene must be 1 for Meta-World"),
        (
            {"task": "metaworld/easy", "holdout_templates": "last"},
            "holdout_templates must be null for Meta-World",
        ),
        ({"task": "metaworld/mt10", "cameras": ["agentview"]}, r"cameras must be \[corner2\]"),
        ({"task": "metaworld/mt10", "image_size": [0, 32]}, "image_size"),
    ],
)
def test_metaworld_options_it_cannot_honour_are_refused_with_the_reason(options, message):
    with pytest.raises(ValueError, match=message):
        RecordConfig(**options)


def test_metaworld_ids_resolve_to_task_ids_and_default_to_its_camera():
    config = RecordConfig(task=["metaworld/mt10", "metaworld/reach-v3", "metaworld/easy"])
    assert config.task[:2] == ["metaworld/reach-v3", "metaworld/push-v3"]
    assert len(config.task) == len(set(config.task)) == 10 + 28 - 7  # MT10 and easy share seven tasks
    assert config.cameras == ["corner2"]  # sim's default cameras stand for "the default"
    assert RecordConfig(task="metaworld/reach-v3", cameras=["corner2"], holdout_templates="none").task == [
        "metaworld/reach-v3"
    ]


def test_recording_metaworld_without_it_says_how_to_install_it_before_writing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # makes `import metaworld` raise ImportError
    out = tmp_path / "demos"
    with pytest.raises(ImportError, match=r"make metaworld.*\.venv-metaworld"):
        record(RecordConfig(task="metaworld/reach-v3", out=str(out), **SMALL))
    assert not out.exists()
