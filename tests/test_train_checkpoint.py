"""vla-train checkpoints: the files, the last pointer, pruning, and a clear error for every broken one."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from toy_vla import ToyVLA, make_config

from vla.train import checkpoint as ckpt
from vla.train.loop import train


@pytest.fixture
def dataset(make_dataset):
    return make_dataset(episodes=4, lengths=[8, 8, 8, 8])  # 24 training samples, 8 validation


def test_checkpoint_files_and_last_pointer(dataset, tmp_path):
    result = train(make_config(dataset, tmp_path / "run", steps=3), ToyVLA)
    checkpoints = tmp_path / "run/checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["000002", "000003", "last"]
    assert (checkpoints / "last").read_text() == "000003\n" and result.checkpoint == checkpoints / "000003"
    files = {p.name for p in result.checkpoint.iterdir()}
    assert files == {"model.safetensors", "config.json", "train_config.json", "optimizer.safetensors"} | {
        "trainer_state.json",
        "rng_state_0.safetensors",
        "README.md",  # the model card (tests/test_model_card.py)
    }
    for (
        path
    ) in result.checkpoint.iterdir():  # plain JSON, text or safetensors: nothing a pickle could hide in
        if path.suffix == ".md":
            assert "# VLA checkpoint, step 3 of 3" in path.read_text()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert path.suffix == ".safetensors" and load_file(path) is not None
    state = json.loads((result.checkpoint / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["position"] == {"epoch": 0, "sample": 12}
    assert len(state["rng"]) == 1 and set(state["rng"][0]) == {"numpy", "python"}
    saved = json.loads((result.checkpoint / "train_config.json").read_text())
    assert saved["model"]["action_dim"] == 7 and saved["model"]["state_dim"] == 17 and saved["steps"] == 3
    optimizer = load_file(result.checkpoint / "optimizer.safetensors")
    assert {"head.0.weight/exp_avg", "head.0.weight/exp_avg_sq", "head.0.weight/step"} <= optimizer.keys()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run/tensorboard")).Reload()
    train_tags = {f"train/{k}" for k in ("loss", "lr", "grad_norm", "samples_per_s", "token_accuracy", "l1")}
    assert train_tags | {"val/loss", "val/token_accuracy", "val/l1"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert set(result.val) == {"loss", "token_accuracy", "l1"}


def _break_missing(directory):
    (directory / "optimizer.safetensors").unlink()


def _break_garbage(directory):
    (directory / "optimizer.safetensors").write_bytes(b"not a safetensors file")


def _break_json(directory):
    path = directory / "trainer_state.json"
    path.write_text(path.read_text()[:50])


def _break_shape(directory):
    path = directory / "optimizer.safetensors"
    tensors = load_file(path)
    tensors["head.0.weight/exp_avg"] = torch.zeros(3, 3)
    save_file(tensors, path)


def _break_pointer(directory):
    (directory.parent / "last").write_text("000099\n")


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_break_missing, r"optimizer\.safetensors: file not found"),
        (_break_garbage, r"optimizer\.safetensors: not a readable safetensors file"),
        (_break_json, r"trainer_state\.json: not valid JSON"),
        (_break_shape, r"optimizer\.safetensors: 'head\.0\.weight/exp_avg' has shape \(3, 3\)"),
        (_break_pointer, r"last: names '000099'"),
    ],
)
def test_broken_checkpoint_is_a_clear_error(dataset, tmp_path, corrupt, message):
    result = train(make_config(dataset, tmp_path / "run"), ToyVLA, until=2)
    corrupt(result.checkpoint)
    with pytest.raises(ckpt.CheckpointError, match=message):
        train(make_config(dataset, tmp_path / "run"), ToyVLA)


def test_resume_on_a_dataset_with_another_action_dim_is_an_error(dataset, make_dataset, tmp_path):
    train(make_config(dataset, tmp_path / "run"), ToyVLA, until=2)
    other = make_dataset(episodes=4, lengths=[8, 8, 8, 8], action_dim=5)
    with pytest.raises(ckpt.CheckpointError, match=r"train_config\.json: model\.action_dim is 7.* has 5"):
        train(make_config(other, tmp_path / "run"), ToyVLA)


def test_model_that_does_not_fit_the_dataset_is_an_error(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"model\.cameras.*\['top'\] not in the dataset"):
        train(make_config(dataset, tmp_path / "a", model={"cameras": ["agentview", "top"]}), ToyVLA)
    with pytest.raises(ValueError, match=r"model\.action_dim is 9 but the dataset .* has 7"):
        train(make_config(dataset, tmp_path / "b", model={"action_dim": 9}), ToyVLA)


def test_keep_last_prunes_old_checkpoints(dataset, tmp_path):
    train(make_config(dataset, tmp_path / "run", steps=7, save_every=1, keep_last=2, val_every=0), ToyVLA)
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["000006", "000007", "last"]


def test_resume_never_refuses_an_existing_run(dataset, tmp_path):
    train(make_config(dataset, tmp_path / "run", steps=2), ToyVLA)
    with pytest.raises(ValueError, match="already holds a run"):
        train(make_config(dataset, tmp_path / "run", steps=4, resume="never"), ToyVLA)
