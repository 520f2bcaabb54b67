"""vla-demo's nested configuration (issue 21, item 9): every preset composes, and builds the RecordConfig,
TrainConfig and EvalConfig it built when the demo copied their fields; the demo fills in what follows from
its own options (the tasks, the paths under out, the schedule's steps) and refuses those fields set."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import configs
import sim.metaworld
from policies import suites
from policies.apps.demo import DemoConfig, demo_train
from vla.train.config import TrainConfig

DEMO_PRESETS = sorted(
    path.stem for path in Path(configs.__file__).parent.glob("*.yaml") if "- demo_schema" in path.read_text()
)
# What each preset built before the nesting (policies/apps/demo.py at 675e6bf, captured by calling its
# _train_config, _record and _evaluate with record() and run() replaced, on a machine without CUDA): the
# fields that differ from the class's defaults, a nested dataclass's as dotted keys; task as the preset
# names it (resolved by the test).
# fmt: off
EXPECTED = {
    "demo": {
        "record": {
            "episodes_per_task": 300, "goals_per_scene": 3, "noise": 0.1, "out": "runs/demo/data",
            "task": ["PressButton", "PickUp"], "workers": 2,
        },
        "train": {
            "batch_size": 16, "cache": "memmap", "dataset": "runs/demo/data", "early_frames": 2,
            "early_repeat": 6, "keep_last": 2, "lr": 0.001, "model.bin_sigma": 3.0, "model.chunk_size": 1,
            "model.connector.instruction_keypoints": 8, "model.connector.kind": "keypoints",
            "model.connector.num_queries": 4, "model.goal_loss": 2.0, "model.language.encoder": "minilm",
            "model.prompt": "{instruction}", "model.vision.stages": 3, "out": "runs/demo/train",
            "precision": "bf16", "save_every": 360, "steps": 3600, "val_every": 900, "val_fraction": 0.05,
            "warmup_steps": 50,
        },
        "eval": {
            "checkpoint": "runs/demo/train", "episodes_per_task": 50, "instruction": ["normal"],
            "n_action_steps": 1, "num_envs": 4, "out": "runs/demo", "task": ["PressButton", "PickUp"],
            "torch_threads": 2,
        },
    },
    "suite_cpu": {
        "record": {
            "episodes_per_task": 240, "goals_per_scene": 3, "holdout_templates": "last", "noise": 0.1,
            "out": "runs/suite-cpu/data", "task": ["all"], "workers": 2,
        },
        "train": {
            "batch_size": 16, "cache": "memmap", "dataset": "runs/suite-cpu/data", "early_frames": 2,
            "early_repeat": 6, "keep_last": 2, "lr": 0.001, "model.bin_sigma": 3.0, "model.chunk_size": 1,
            "model.connector.instruction_keypoints": 8, "model.connector.kind": "keypoints",
            "model.connector.num_queries": 4, "model.goal_loss": 2.0, "model.language.encoder": "minilm",
            "model.prompt": "{instruction}", "model.vision.stages": 3, "out": "runs/suite-cpu/train",
            "precision": "bf16", "save_every": 900, "steps": 9000, "switch_repeat": 6, "val_every": 2250,
            "val_fraction": 0.05, "warmup_steps": 100,
        },
        "eval": {
            "checkpoint": "runs/suite-cpu/train", "episodes_per_task": 50, "instruction": ["normal"],
            "n_action_steps": 1, "num_envs": 4, "out": "runs/suite-cpu", "task": ["all"], "torch_threads": 2,
        },
    },
    "suite_smollm2": {
        "record": {
            "episodes_per_task": 400, "goals_per_scene": 3, "holdout_templates": "last", "noise": 0.1,
            "out": "runs/suite-smollm2/data", "task": ["all"], "workers": 8,
        },
        "train": {
            "batch_size": 32, "cache": "memmap", "dataset": "runs/suite-smollm2/data", "early_frames": 2,
            "early_repeat": 6, "keep_last": 2, "model.bin_sigma": 3.0, "model.chunk_size": 1,
            "model.connector.instruction_keypoints": 8, "model.connector.kind": "keypoints",
            "model.connector.num_queries": 4, "model.goal_loss": 2.0, "model.language.encoder": "minilm",
            "model.llm.name": "smollm2-135m", "model.vision.random_shift": 8, "model.vision.stages": 3,
            "out": "runs/suite-smollm2/train", "save_every": 2000, "steps": 20000, "val_every": 5000,
            "val_fraction": 0.05, "warmup_steps": 500,
        },
        "eval": {
            "checkpoint": "runs/suite-smollm2/train", "episodes_per_task": 50, "instruction": ["normal"],
            "n_action_steps": 1, "num_envs": 8, "out": "runs/suite-smollm2", "task": ["all"],
        },
    },
    "metaworld_mt10_cpu": {
        "record": {
            "cameras": ["corner2"], "episodes_per_task": 50, "noise": 0.1,
            "out": "runs/metaworld-mt10-cpu/data", "task": ["metaworld/mt10"], "workers": 2,
        },
        "train": {
            "batch_size": 16, "cache": "memmap", "dataset": "runs/metaworld-mt10-cpu/data", "keep_last": 2,
            "lr": 0.001, "model.bin_sigma": 3.0, "model.cameras": ["corner2"], "model.chunk_size": 1,
            "model.connector.instruction_keypoints": 8, "model.connector.kind": "keypoints",
            "model.connector.num_queries": 4, "model.goal_loss": 2.0, "model.language.encoder": "minilm",
            "model.prompt": "{instruction}", "model.vision.stages": 3,
            "out": "runs/metaworld-mt10-cpu/train", "precision": "bf16", "save_every": 1200, "steps": 12000,
            "switch_repeat": 6, "val_every": 3000, "val_fraction": 0.05, "warmup_steps": 100,
        },
        "eval": {
            "checkpoint": "runs/metaworld-mt10-cpu/train", "episodes_per_task": 10,
            "instruction": ["normal"], "n_action_steps": 1, "num_envs": 4, "out": "runs/metaworld-mt10-cpu",
            "task": ["metaworld/mt10"], "torch_threads": 2,
        },
    },
    "metaworld_mt50": {
        "record": {
            "cameras": ["corner2"], "episodes_per_task": 50, "noise": 0.1, "out": "runs/metaworld-mt50/data",
            "task": ["metaworld/mt50"], "workers": 8,
        },
        "train": {
            "batch_size": 32, "cache": "memmap", "dataset": "runs/metaworld-mt50/data", "keep_last": 2,
            "model.bin_sigma": 3.0, "model.cameras": ["corner2"], "model.chunk_size": 1,
            "model.connector.instruction_keypoints": 8, "model.connector.kind": "keypoints",
            "model.connector.num_queries": 4, "model.goal_loss": 2.0, "model.language.encoder": "minilm",
            "model.llm.name": "smollm2-135m", "model.vision.random_shift": 8, "model.vision.stages": 3,
            "out": "runs/metaworld-mt50/train", "save_every": 4000, "steps": 40000, "switch_repeat": 6,
            "val_every": 10000, "val_fraction": 0.05, "warmup_steps": 500,
        },
        "eval": {
            "checkpoint": "runs/metaworld-mt50/train", "episodes_per_task": 10, "instruction": ["normal"],
            "n_action_steps": 1, "num_envs": 8, "out": "runs/metaworld-mt50", "task": ["metaworld/mt50"],
        },
    },
}
# fmt: on


def _compose(preset: str, *overrides: str) -> DemoConfig:
    with initialize_config_module("configs", version_base="1.3"):
        return OmegaConf.to_object(compose(preset, overrides=list(overrides)))


def _flat(value, prefix: str = "") -> dict:
    """A dataclass's fields, a nested dataclass's as dotted keys (tuples as lists, as the table has them)."""
    if not dataclasses.is_dataclass(value):
        return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}
    items = {}
    for field in dataclasses.fields(value):
        items.update(_flat(getattr(value, field.name), f"{prefix}{field.name}."))
    return items


def _changes(config) -> dict:
    """The fields of ``config`` that differ from its class's defaults."""
    defaults = {}
    for field in dataclasses.fields(config):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        defaults.update(_flat(default, f"{field.name}."))
    return {
        key: value for key, value in _flat(config).items() if key not in defaults or defaults[key] != value
    }


def test_the_table_holds_every_demo_preset():
    assert sorted(EXPECTED) == DEMO_PRESETS


@pytest.mark.parametrize("preset", DEMO_PRESETS)
def test_the_nested_configs_compose_for_every_preset_as_the_run_had_them(preset, monkeypatch):
    monkeypatch.setattr(sim.metaworld, "check_installed", lambda: None)  # Meta-World's eval config, here too
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # device auto: the table's cpu
    config = _compose(preset)
    built = {"record": config.record_config(), "train": config.train_config(), "eval": config.eval_config()}
    for group, expected in EXPECTED[preset].items():
        if "task" in expected:  # record's and eval's
            expected = {**expected, "task": suites.resolve(expected["task"])}
        assert _changes(built[group]) == expected, group


def test_the_schedule_the_demo_derives_follows_train_steps():
    """Warmup at most a tenth of the run, validation every quarter, a checkpoint every tenth (save_every 0)."""
    train = _compose("demo", "train.steps=100").train_config()
    assert (train.warmup_steps, train.val_every, train.save_every) == (10, 25, 10)
    assert _compose("demo", "train.steps=100", "train.save_every=7").train_config().save_every == 7


@pytest.mark.parametrize("override", ["steps=100", "train.bogus=1", "eval.bogus=1", "model.chunk_size=1"])
def test_an_unknown_key_is_a_hydra_error_the_flat_keys_of_before_included(override):
    with pytest.raises(ConfigCompositionException, match=re.escape(override.split("=")[0])):
        _compose("demo", override)


@pytest.mark.parametrize(
    "preset, override, because",
    [
        ("demo", "train.dataset=elsewhere", "out/data"),
        ("demo", "record.out=elsewhere", "a path under out"),
        ("demo", "eval.task=[PickUp]", "the demo's task"),
        ("demo", "train.val_every=3", "a quarter of train.steps"),
        ("demo", "eval.instruction=[normal,blank]", "instruction_eval"),
        ("suite_cpu", "eval.holdout_templates=none", "record.holdout_templates"),
        ("metaworld_mt10_cpu", "record.cameras=[agentview]", "Meta-World's one camera"),
    ],
)
def test_a_field_the_demo_fills_in_is_refused_naming_what_decides_it(preset, override, because):
    key = re.escape(override.split("=")[0])
    with pytest.raises(ValueError, match=rf"^{key} is filled in by the demo \(.*{re.escape(because)}"):
        _compose(preset, override)


def test_python_configs_start_from_the_demos_defaults():
    """demo_train() and its kin hold the placeholders the demo fills in; vla-train's own defaults do not."""
    with pytest.raises(ValueError, match=r"train\.dataset is filled in by the demo"):
        DemoConfig(train=TrainConfig(steps=3))
    config = DemoConfig(out="o", train=demo_train(steps=3))
    again = dataclasses.replace(config, stages=["train"])  # checked again, the fills still the demo's
    assert again.train_config().dataset == "o/data" and again.train_config().steps == 3
