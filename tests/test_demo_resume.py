"""vla-demo's train stage survives a crash: it checkpoints periodically, and a re-run continues the run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from toy_vla import SMALL

from vla.train import checkpoint as ckpt
from vla.train.loop import train

STEPS = 30
OVERRIDES = [
    *SMALL,
    "task=[PressButton]",
    "stages=[train]",
    f"train.steps={STEPS}",
    "train.batch_size=4",
    "train.save_every=3",
]


def demo_config(out, *more):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import policies.apps.demo  # noqa: F401  (registers the preset's schema)

    with initialize_config_module("configs", version_base="1.3"):
        return OmegaConf.to_object(compose("demo", overrides=[*OVERRIDES, f"out={out}", *more]))


def test_a_killed_demo_train_stage_resumes_from_its_last_checkpoint(make_dataset, tmp_path):
    out = tmp_path / "demo"
    make_dataset(root=out / "data", episodes=4, lengths=[8, 8, 8, 8])
    log = (tmp_path / "demo.log").open("w")
    command = [sys.executable, "-m", "policies.apps.demo", *OVERRIDES, f"out={out}"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while ckpt.last_checkpoint(out / "train") is None and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.02)
        process.kill()  # as a crash would: no clean-up
    finally:
        process.wait()
    killed_at = int(ckpt.last_checkpoint(out / "train").name)
    assert 0 < killed_at < STEPS, (tmp_path / "demo.log").read_text()[-3000:]
    # The re-run: what `vla-demo stages=[train]` does with the same settings, observed step by step.
    config = demo_config(out)
    seen = []
    result = train(config.train_config(), hooks=[lambda step, model: seen.append(step)])
    assert seen[0] == killed_at + 1 and result.step == STEPS
    kept = sorted(p.name for p in (out / "train/checkpoints").iterdir() if p.name.isdigit())
    assert kept[-1] == f"{STEPS:06d}" and len(kept) == config.train.keep_last


def test_the_demo_passes_its_checkpoint_settings_to_training(tmp_path):
    from policies.apps.demo import DemoConfig, demo_train

    config = demo_config(tmp_path, "train.resume=force", "train.save_every=0")
    train_config = config.train_config()
    assert train_config.resume == "force" and train_config.save_every == STEPS // 10
    assert train_config.keep_last == 2 and train_config.dataset == str(tmp_path / "data")
    with pytest.raises(ValueError, match="resume must be one of"):
        DemoConfig(train=demo_train(resume="sometimes"))
