"""Resuming vla-train: which checkpoint a path names, and a resume refused when the run it would continue is
not the same run (schedule, data settings, dataset), unless resume=force."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import synthetic_episode
from toy_vla import ToyVLA, demo_model, make_config

from vla.data.writer import DatasetWriter
from vla.model.io import resolve_checkpoint
from vla.train import checkpoint as ckpt
from vla.train.loop import train


@pytest.fixture
def dataset(make_dataset):
    return make_dataset(episodes=4, lengths=[8, 8, 8, 8])  # 24 training samples, 8 validation


def steps_run(config, until=None) -> list[int]:
    """The optimizer steps a call of train() does: a resumed run starts after its checkpoint's step."""
    seen = []
    train(config, ToyVLA, until=until, hooks=[lambda step, model: seen.append(step)])
    return seen


def test_an_unchanged_rerun_resumes_where_the_run_stopped(dataset, tmp_path):
    config = make_config(dataset, tmp_path / "run")
    assert steps_run(config, until=2) == [1, 2]
    bookkeeping = {"val_every": 1, "keep_last": 1, "log_every": 2, "precision": "fp32", "cache": "memmap"}
    changed_bookkeeping = make_config(dataset, tmp_path / "run", **bookkeeping)
    assert steps_run(changed_bookkeeping) == [3, 4]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"steps": 6}, r"steps: 4 vs 6"),
        ({"lr": 2e-2}, r"lr: 0\.01 vs 0\.02"),
        ({"betas": [0.9, 0.99]}, r"betas: \[0\.9, 0\.95\] vs \[0\.9, 0\.99\]"),
        ({"grad_accum": 2}, r"grad_accum: 1 vs 2"),
        ({"seed": 1}, r"seed: 0 vs 1"),
        ({"val_fraction": 0.5}, r"val_fraction: 0\.25 vs 0\.5"),
    ],
)
def test_a_resume_with_another_schedule_or_data_setting_is_refused(dataset, tmp_path, change, named):
    steps_run(make_config(dataset, tmp_path / "run"), until=2)
    with pytest.raises(ckpt.CheckpointError, match=rf"field: checkpoint vs now\): {named}\. .*resume=force"):
        train(make_config(dataset, tmp_path / "run", **change), ToyVLA)
    assert ckpt.last_checkpoint(tmp_path / "run").name == "000002", "a refused resume writes nothing"


def test_force_continues_a_changed_schedule_but_never_another_model(dataset, tmp_path):
    steps_run(make_config(dataset, tmp_path / "run"), until=2)
    assert steps_run(make_config(dataset, tmp_path / "run", steps=6, resume="force")) == [3, 4, 5, 6]
    saved = json.loads((tmp_path / "run/checkpoints/000006/train_config.json").read_text())
    assert saved["steps"] == 6 and saved["resume"] == "force"
    # The checkpoints now record the new settings: a plain re-run with them is the same run, finished.
    assert steps_run(make_config(dataset, tmp_path / "run", steps=6)) == []
    model = {"chunk_size": 2}
    with pytest.raises(
        ckpt.CheckpointError, match=r"model\.chunk_size: checkpoint 4, this run 2.*resume=force"
    ):
        train(make_config(dataset, tmp_path / "run", steps=6, model=model, resume="force"), ToyVLA)


def test_a_resume_on_another_dataset_is_refused(dataset, tmp_path):
    steps_run(make_config(dataset, tmp_path / "run"), until=2)
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    with pytest.raises(ckpt.CheckpointError, match=r"dataset\.path: '.*' vs '.*copy'") as refused:
        train(make_config(copy, tmp_path / "run"), ToyVLA)
    assert "meta_sha256" not in str(refused.value), "the same content under another path"
    # Topped up in place: the same path, one more episode, so another dataset.
    with DatasetWriter.open(dataset) as writer:
        writer.add_episode(
            synthetic_episode(
                4, 8, ("agentview", "wrist"), (32, 32), 17, 7, 10, tmp_path, 0, codec=writer.codec
            )
        )
    with pytest.raises(
        ckpt.CheckpointError,
        match=r"dataset\.total_episodes: 4 vs 5; dataset\.total_frames: 32 vs 40; dataset\.meta_sha256",
    ):
        train(make_config(dataset, tmp_path / "run"), ToyVLA)
    assert steps_run(make_config(dataset, tmp_path / "run", resume="force")) == [3, 4]


def test_a_checkpoint_that_does_not_record_its_dataset_is_refused(dataset, tmp_path):
    """Checkpoints written before the fingerprint existed: the dataset cannot be checked."""
    result = train(make_config(dataset, tmp_path / "run"), ToyVLA, until=2)
    path = result.checkpoint / ckpt.TRAINER_STATE
    state = json.loads(path.read_text())
    del state["dataset"]
    path.write_text(json.dumps(state))
    with pytest.raises(ckpt.CheckpointError, match=r"dataset\.path: not recorded .* vs '"):
        train(make_config(dataset, tmp_path / "run"), ToyVLA)
    assert steps_run(make_config(dataset, tmp_path / "run", resume="force")) == [3, 4]


def test_every_form_of_a_checkpoint_path_resolves(dataset, tmp_path):
    """A checkpoint directory, its run, the run's checkpoints/ and the last pointer a user sees there."""
    run = tmp_path / "run"
    train(make_config(dataset, run, steps=3), ToyVLA)
    newest = run / "checkpoints/000003"
    for form in (newest, run, run / "checkpoints", run / "checkpoints/last", str(run / "checkpoints/last")):
        assert resolve_checkpoint(form) == newest
    assert resolve_checkpoint(run / "checkpoints/000002") == run / "checkpoints/000002"
    with pytest.raises(FileNotFoundError, match=r"is not a checkpoint: give a checkpoint directory"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no such file or directory"):
        resolve_checkpoint(run / "checkpoints/000009")
    (run / "checkpoints/last").write_text("000009\n")
    with pytest.raises(ckpt.CheckpointError, match=r"last: names '000009'"):
        resolve_checkpoint(run / "checkpoints/last")


def test_vla_train_resumes_from_the_last_pointer_of_another_run(dataset, tmp_path):
    train(make_config(dataset, tmp_path / "a"), ToyVLA, until=2)
    pointer = str(tmp_path / "a/checkpoints/last")
    assert steps_run(make_config(dataset, tmp_path / "b", resume=pointer)) == [3, 4]
    assert ckpt.last_checkpoint(tmp_path / "b").name == "000004"
    with pytest.raises(FileNotFoundError, match="is not a checkpoint"):
        train(make_config(dataset, tmp_path / "c", resume=str(tmp_path)), ToyVLA)


def test_vla_eval_loads_the_last_pointer(make_dataset, tmp_path):
    """`vla-eval checkpoint=<run>/checkpoints/last`: the path a user types after seeing the pointer."""
    from policies.vla_policy import VLAPolicy
    from vla.data.dataset import VLADataset
    from vla.model.vla import VLA

    model = demo_model()
    data = VLADataset(make_dataset(episodes=1, lengths=[4]), cameras=model.cameras, chunk_size=1)
    VLA(model, data.stats).save(tmp_path / "run/checkpoints/000005")
    ckpt.write_last(tmp_path / "run", "000005")
    policy = VLAPolicy(tmp_path / "run/checkpoints/last")
    assert policy.checkpoint == tmp_path / "run/checkpoints/000005"
    assert policy.config.state_dropout == model.state_dropout
