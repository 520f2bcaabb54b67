"""vla-train: exact resume, schedule, gradient accumulation, checkpoints without pickle, clear errors.

The loop is tested with ``ToyVLA``, a small stand-in with the VLA interface (``loss``, ``save``, ``load``),
so these tests exercise the trainer alone; ``test_trains_the_real_vla`` runs the real tiny model.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from toy_vla import NoDropoutToy, ToyVLA, make_config, weights

from vla.model.config import VisionConfig
from vla.train import checkpoint as ckpt
from vla.train.loop import train
from vla.train.sampler import ResumableBatchSampler, fixed_batches
from vla.train.schedule import lr_factor, param_groups


@pytest.fixture
def dataset(make_dataset):
    return make_dataset(episodes=4, lengths=[8, 8, 8, 8])  # 24 training samples, 8 validation


def test_resume_is_exact(dataset, tmp_path, monkeypatch):
    # grad_accum 2: 8 batches of 4 from 24 samples, so the run crosses an epoch boundary after resuming.
    straight = train(make_config(dataset, tmp_path / "a", grad_accum=2), ToyVLA)
    first = train(make_config(dataset, tmp_path / "b", grad_accum=2), ToyVLA, until=2)
    assert first.step == 2 and (tmp_path / "b/checkpoints/last").read_text().strip() == "000002"

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    resumed = train(make_config(dataset, tmp_path / "b", grad_accum=2), ToyVLA)
    assert straight.step == resumed.step == 4
    a, b = weights(straight.checkpoint), weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = load_file(straight.checkpoint / ckpt.OPTIMIZER_FILE)
    opt_b = load_file(resumed.checkpoint / ckpt.OPTIMIZER_FILE)
    assert all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a)
    assert straight.val == resumed.val
    # The weights did move (an equality of two untouched models would prove nothing).
    assert not torch.equal(a["head.0.weight"], weights(first.checkpoint)["head.0.weight"])


def test_resume_without_rng_state_diverges(dataset, tmp_path, monkeypatch):
    """The dropout masks depend on the restored RNG: skipping that restore breaks exactness."""
    straight = train(make_config(dataset, tmp_path / "a"), ToyVLA)
    train(make_config(dataset, tmp_path / "b"), ToyVLA, until=2)
    monkeypatch.setattr("vla.train.state.restore_rng", lambda tensors, plain: None)
    resumed = train(make_config(dataset, tmp_path / "b"), ToyVLA)
    a, b = weights(straight.checkpoint), weights(resumed.checkpoint)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_lr_schedule_warms_up_then_decays_by_cosine():
    factors = [lr_factor(s, warmup_steps=10, total_steps=110, min_ratio=0.1) for s in range(120)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 50 / 99)))
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[109] == pytest.approx(0.1) and factors[119] == pytest.approx(0.1)


def test_grad_accumulation_matches_one_big_batch(dataset, tmp_path):
    big = train(make_config(dataset, tmp_path / "big", batch_size=8, steps=2, warmup_steps=0), NoDropoutToy)
    accumulated = train(
        make_config(dataset, tmp_path / "acc", batch_size=4, grad_accum=2, steps=2, warmup_steps=0),
        NoDropoutToy,
    )
    a, b = weights(big.checkpoint), weights(accumulated.checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    single = train(
        make_config(dataset, tmp_path / "one", batch_size=4, steps=2, warmup_steps=0), NoDropoutToy
    )
    assert not torch.allclose(weights(single.checkpoint)["head.0.weight"], a["head.0.weight"], atol=1e-5)


def test_frozen_params_never_reach_the_optimizer(dataset, tmp_path):
    config = make_config(dataset, tmp_path / "run", steps=2, model={"vision": VisionConfig(frozen=True)})
    model = ToyVLA(config.model, {k: {"mean": np.zeros(d), "std": np.ones(d)} for k, d in
                                  (("observation.state", 17), ("action", 7))})  # fmt: skip
    groups = param_groups(model, weight_decay=0.1)
    names = [n for g in groups for n in g.names]
    assert "vision.weight" not in names and "vision.bias" not in names
    no_decay = next(g for g in groups if g.weight_decay == 0.0).names
    assert {"camera_embedding", "norm.weight", "norm.bias", "head.0.bias"} <= set(no_decay)
    assert next(g for g in groups if g.weight_decay == 0.1).names == ["head.0.weight", "head.3.weight"]
    result = train(config, ToyVLA)
    assert not any(k.startswith("vision.") for k in load_file(result.checkpoint / "optimizer.safetensors"))
    assert torch.equal(
        weights(result.checkpoint)["vision.weight"], ToyVLA.load(result.checkpoint).vision.weight
    )


def test_sampler_slices_and_resumes():
    full = ResumableBatchSampler(20, batch_size=3, seed=5, rank=0, num_processes=2)
    other = ResumableBatchSampler(20, batch_size=3, seed=5, rank=1, num_processes=2)
    batches, others = list(full), list(other)
    assert len(batches) == len(others) == 3  # 20 // 6; the incomplete last global batch is dropped
    seen = [i for batch in batches + others for i in batch]
    assert len(seen) == len(set(seen)) == 18
    full.position.sample = 6  # one global batch consumed
    assert list(full) == batches[1:]
    full.position.epoch = 1
    assert list(full) != batches[1:]
    val = fixed_batches(10, 4, max_batches=0, seed=0, rank=0, world=1)
    assert sorted(i for batch in val for i in batch) == list(range(10)) and val == fixed_batches(
        10, 4, 0, 0, 0, 1
    )


@pytest.mark.parametrize("override", ["bogus=1", "model.llm.bogus=1", "model=nonexistent"])
def test_unknown_config_key_is_a_hydra_error(tmp_path, override):
    run = subprocess.run(
        [sys.executable, "-m", "policies.apps.train", f"dataset={tmp_path}", f"out={tmp_path}/run", override],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert override.split("=")[1 if "nonexistent" in override else 0].split(".")[-1] in run.stderr
    assert not (tmp_path / "run").exists()


def test_resume_is_exact_with_worker_processes(dataset, tmp_path):
    options = {"num_workers": 1, "grad_accum": 2, "steps": 5, "val_every": 0}  # killed at 3: resumes from 2
    straight = train(make_config(dataset, tmp_path / "a", **options), ToyVLA)
    train(make_config(dataset, tmp_path / "b", **options), ToyVLA, until=3)
    resumed = train(make_config(dataset, tmp_path / "b", **options), ToyVLA)
    a, b = weights(straight.checkpoint), weights(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)


DDP_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_train import NoDropoutToy, ToyVLA, make_config
from vla.train.loop import train
dataset, out = sys.argv[2], sys.argv[3]
train(make_config(dataset, out + "/plain", batch_size=2, steps=2, warmup_steps=0), NoDropoutToy)
train(make_config(dataset, out + "/a", batch_size=2, grad_accum=2), ToyVLA)
train(make_config(dataset, out + "/b", batch_size=2, grad_accum=2), ToyVLA, until=2)
train(make_config(dataset, out + "/b", batch_size=2, grad_accum=2), ToyVLA)
"""


def test_two_processes_average_gradients_and_resume_exactly(dataset, tmp_path):
    """Two CPU processes (torchrun, gloo) through accelerate: DDP averages their gradients (2 x batch 2
    equals one process with batch 4), each writes its RNG state, and resume stays exact."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
    run = subprocess.run(
        [*command, str(Path(__file__).parent), str(dataset), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    single = train(
        make_config(dataset, tmp_path / "single", batch_size=4, steps=2, warmup_steps=0), NoDropoutToy
    )
    plain = weights(tmp_path / "plain/checkpoints/000002")
    for key, value in weights(single.checkpoint).items():
        torch.testing.assert_close(plain[key], value, rtol=1e-4, atol=1e-5)
    a, b = weights(tmp_path / "a/checkpoints/000004"), weights(tmp_path / "b/checkpoints/000004")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b/checkpoints/000004/rng_state_1.safetensors").is_file()


VLA_DDP_SCRIPT = """
import dataclasses
import sys
sys.path.insert(0, sys.argv[1])
from toy_vla import demo_model, make_config
from vla.train.loop import train
model = dataclasses.asdict(demo_model())
train(make_config(sys.argv[2], sys.argv[3], model=model, batch_size=2, steps=3, val_every=3, val_batches=1))
"""


def test_two_processes_train_the_demo_model(dataset, tmp_path):
    """The demo preset's model (the state shown, goal loss, keypoints, sentence encoder) under DDP on two CPU
    processes: DDP fails when a trainable weight gets no gradient, as the unused state MLP once did."""
    script = tmp_path / "ddp_vla.py"
    script.write_text(VLA_DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
    run = subprocess.run(
        [*command, str(Path(__file__).parent), str(dataset), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = tmp_path / "run/checkpoints/000003"
    assert (checkpoint / "rng_state_1.safetensors").is_file()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["num_processes"] == 2
    assert json.loads((checkpoint / "config.json").read_text())["state_dropout"] == 0.0  # the demo's


TINY_CLI = [
    "model=tiny",
    "model.image_size=[32,32]",
    "model.chunk_size=2",
    "model.vision.width=64",
    "model.llm.hidden_size=64",
    "model.llm.num_layers=2",
    "model.llm.num_heads=2",
    "model.llm.intermediate_size=128",
    "batch_size=2",
    "val_fraction=0.34",
    "val_every=2",
    "val_batches=1",
    "save_every=2",
    "log_every=1",
]


def test_vla_train_trains_the_tiny_vla(make_dataset, tmp_path):
    """The real model through the real command: 2 steps, a self-contained checkpoint, then a resume; with the
    goal loss, whose error is logged with the other metrics and whose head the checkpoint keeps."""
    from vla.data.dataset import VLADataset, collate
    from vla.model.vla import VLA

    dataset = make_dataset(episodes=3, lengths=[6, 6, 6])
    command = [
        sys.executable,
        "-m",
        "policies.apps.train",
        f"dataset={dataset}",
        f"out={tmp_path / 'run'}",
        *TINY_CLI,
        "model.goal_loss=0.5",
    ]
    run = subprocess.run([*command, "steps=2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = tmp_path / "run/checkpoints/000002"
    assert "step 2; checkpoint" in run.stdout and "validation: loss" in run.stdout
    assert "goal_l1" in run.stdout
    assert {"model.safetensors", "config.json", "stats.json", "backbone", "optimizer.safetensors"} <= {
        p.name for p in checkpoint.iterdir()
    }
    model = VLA.load(checkpoint)
    assert model.goal_head is not None and model.config.goal_loss == 0.5
    samples = VLADataset(dataset, cameras=model.config.cameras, image_size=(32, 32), chunk_size=2)
    assert model.predict(collate([samples[0], samples[7]])).shape == (2, 2, 7)
    longer = subprocess.run([*command, "steps=3"], capture_output=True, text=True, timeout=300)
    assert longer.returncode != 0 and "steps: 2 vs 3" in longer.stderr, "a longer schedule is another run"
    resumed = subprocess.run(
        [*command, "steps=3", "resume=force"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run/checkpoints/last").read_text() == "000003\n"
    assert json.loads((tmp_path / "run/checkpoints/000003/trainer_state.json").read_text())["step"] == 3


def test_resume_is_exact_with_the_tiny_vla(make_dataset, tmp_path):
    """The issue's test on the real model: 2 steps, resume, 2 more == 4 straight steps, bit for bit."""
    from vla.model.config import LLMConfig

    dataset = make_dataset(episodes=3, lengths=[6, 6, 6])
    small = {
        "vision": VisionConfig(width=64),
        "llm": LLMConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        "chunk_size": 2,
    }
    options = {"model": small, "batch_size": 2, "lr": 1e-3, "val_fraction": 0.34, "val_batches": 1}
    straight = train(make_config(dataset, tmp_path / "a", **options))
    train(make_config(dataset, tmp_path / "b", **options), until=2)
    resumed = train(make_config(dataset, tmp_path / "b", **options))
    a, b = weights(straight.checkpoint), weights(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight.val == resumed.val


def test_early_frames_are_visited_more_often_and_validation_is_not(make_dataset):
    """early_frames / early_repeat: the frames before the arm commits to a target weigh more in training."""
    from collections import Counter

    from vla.data.meta import load_meta
    from vla.model.config import ModelConfig
    from vla.train.config import TrainConfig
    from vla.train.data import make_datasets

    root = make_dataset(episodes=4, lengths=[6, 5, 7, 6])
    model = ModelConfig(cameras=["agentview", "wrist"], image_size=[32, 32], chunk_size=1)
    plain, _ = make_datasets(root, model, load_meta(root), 0.25, None)
    train, val = make_datasets(root, model, load_meta(root), 0.25, None, early_frames=2, early_repeat=3)
    frames = Counter(int(train[i]["frame_index"]) for i in range(len(train)))
    episodes = len({int(plain[i]["episode_index"]) for i in range(len(plain))})
    assert frames[0] == frames[1] == 3 * episodes and frames[2] == episodes
    assert len(train) == len(plain) + 2 * 2 * episodes
    assert len(val) == 6  # the held-out episode, each frame once
    with pytest.raises(ValueError, match="early_repeat"):
        TrainConfig(dataset="d", early_repeat=0)


def test_save_every_0_checkpoints_every_tenth_of_the_run_whatever_steps_becomes():
    from dataclasses import replace

    from vla.train.config import TrainConfig

    config = TrainConfig(dataset="d", out="o", steps=1000, save_every=0)
    assert config.save_every == 0 and config.checkpoint_every == 100
    assert (
        replace(config, steps=3600).checkpoint_every == 360 and replace(config, steps=5).checkpoint_every == 1
    )
    assert replace(config, save_every=7).checkpoint_every == 7
    with pytest.raises(ValueError, match="save_every must be >= 0"):
        TrainConfig(dataset="d", save_every=-1)


def test_the_frames_where_the_gripper_switches_are_found_per_episode(make_dataset):
    """switch_repeat oversamples the first frame of each closing or opening: there the gripper is still in
    its old state, so it is the only frame that teaches to switch."""
    from types import SimpleNamespace

    from vla.data.gripper import gripper_column, gripper_switches, next_switch_rows
    from vla.data.meta import load_meta
    from vla.model.config import ModelConfig
    from vla.train.data import make_datasets

    grip = [-1, -1, 1, 1, 1, -1, 1, 1, -1, -1]  # two episodes: 0..5 (close at 2, open at 5), 6..9 (open at 8)
    table = SimpleNamespace(
        action=np.array([[0.0, g] for g in grip], dtype=np.float32),
        frame_index=np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3]),
        last=np.array([5] * 6 + [9] * 4),
    )
    meta = SimpleNamespace(features={"action": {"names": ["dx", "gripper"]}})
    assert gripper_column(meta) == 1
    # Frame 6 starts an episode: its label differs from frame 5's, but nothing switched there.
    switched = gripper_switches(table, gripper_column(meta))
    assert np.flatnonzero(switched).tolist() == [2, 5, 8]
    # The pick target: each frame's next switch at or after it, never one of the next episode; else the end.
    assert next_switch_rows(table, switched).tolist() == [2, 2, 2, 5, 5, 5, 8, 8, 8, 9]
    assert next_switch_rows(table, np.zeros(10, bool)).tolist() == table.last.tolist()
    root = make_dataset(episodes=2, lengths=[4, 4])  # synthetic actions have no "gripper"
    model = ModelConfig(cameras=["agentview", "wrist"], image_size=[32, 32], chunk_size=1)
    with pytest.raises(ValueError, match=r"'gripper'.*action_0"):
        make_datasets(root, model, load_meta(root), 0.0, None, switch_repeat=3)


def test_bf16_is_used_on_cuda_and_on_cpus_with_native_bf16_only(monkeypatch):
    from vla.train import loop

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loop.uses_bf16("auto", cuda) and not loop.uses_bf16("auto", cpu)
    assert not loop.uses_bf16("fp32", cuda)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert loop.uses_bf16("bf16", cpu)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):  # emulated bf16 would only cost time
        assert not loop.uses_bf16("bf16", cpu)
