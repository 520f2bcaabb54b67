"""Periodic closed-loop evaluation during training: the trainer's step hooks (vla/) and the ``vla-train``
app's evaluation in simulation (policies/), with success rates in TensorBoard."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from toy_vla import ToyVLA, make_config

from policies.apps.train import ClosedLoopConfig, TrainAppConfig, train_with_eval
from policies.recording.app import RecordConfig, record
from vla.model.config import LLMConfig, ModelConfig, VisionConfig
from vla.train.loop import train


def _scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_hooks_run_after_every_step_in_eval_mode_and_log_their_scalars(make_dataset, tmp_path):
    dataset = make_dataset(episodes=4, lengths=[8, 8, 8, 8])
    seen, models = [], []

    def hook(step, model):
        seen.append((step, model.training, torch.is_grad_enabled()))
        models.append(model)
        return {"eval/fake_success": step / 10} if step % 2 == 0 else None

    result = train(make_config(dataset, tmp_path / "run"), ToyVLA, hooks=[hook])
    assert seen == [(step, False, False) for step in (1, 2, 3, 4)]
    assert models[-1].training  # handed back in training mode
    assert result.hooks == {"eval/fake_success": 0.4}
    assert _scalars(tmp_path / "run")["eval/fake_success"] == [
        (2, pytest.approx(0.2)),
        (4, pytest.approx(0.4)),
    ]


def test_vla_train_evaluates_closed_loop_every_n_steps_and_at_the_end(tmp_path):
    # Three recorded demonstrations (in the simulator's action units, which the evaluation checks): the model
    # will not succeed, but the evaluation must run on the model in training and land in TensorBoard at
    # steps 2 and 3.
    dataset = tmp_path / "demos"
    record(RecordConfig(task=["PressButton"], episodes_per_task=3, image_size=[32, 32], out=str(dataset)))
    model = ModelConfig(
        vision=VisionConfig(kind="resnet18", width=32),
        llm=LLMConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        image_size=[32, 32],
        chunk_size=4,
    )
    closed_loop = ClosedLoopConfig(every=2, task=["PressButton"], episodes_per_task=2, max_steps=6)
    config = TrainAppConfig(
        model=model, dataset=str(dataset), out=str(tmp_path / "run"), steps=3, batch_size=4, warmup_steps=0,
        val_fraction=0.34, val_every=0, save_every=3, log_every=1, closed_loop=closed_loop,
    )  # fmt: skip
    result = train_with_eval(config)
    scalars = _scalars(tmp_path / "run")
    assert [step for step, _ in scalars["eval/mean_success"]] == [2, 3]
    assert [step for step, _ in scalars["eval/success/PressButton"]] == [2, 3]
    lengths = [value for _, value in scalars["eval/mean_length/PressButton"]]
    assert all(0 < length <= 6 for length in lengths), lengths  # the step limit was applied
    assert result.hooks["eval/mean_success"] == scalars["eval/mean_success"][-1][1]


def test_closed_loop_config_errors():
    with pytest.raises(ValueError, match=r"closed_loop\.task"):
        ClosedLoopConfig(every=100)
    with pytest.raises(ValueError, match="unknown tasks"):
        ClosedLoopConfig(every=100, task=["FoldLaundry"])
    with pytest.raises(ValueError, match=r"closed_loop\.episodes_per_task"):
        ClosedLoopConfig(every=100, task=["all"], episodes_per_task=0)
    assert len(ClosedLoopConfig(every=1, task=["all"]).task) > 1
    assert ClosedLoopConfig().every == 0  # off by default: no tasks needed
