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

from policies.record import RecordConfig, record
from vla.data.meta import load_meta

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


def test_two_spawned_workers_record_the_same_kind_of_dataset(tmp_path):
    out = tmp_path / "demos"
    record(
        RecordConfig(
            task=["PressButton", "OpenDrawer"], episodes_per_task=2, out=str(out), workers=2, **SMALL
        )
    )
    assert _tasks(out) == {"PressButton": 2, "OpenDrawer": 2}
    meta = load_meta(out)
    indices = [row["episode_index"] for row in meta.episodes]
    assert indices == list(range(4))


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


def test_killed_mid_recording_leaves_a_loadable_dataset_and_resumes(tmp_path):
    out = tmp_path / "demos"
    command = [
        sys.executable, "-m", "policies.record", "task=PlaceInBin", "episodes_per_task=8",
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
