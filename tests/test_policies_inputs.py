"""What reaches a checkpoint's network in evaluation matches training: the same pixels, the same action units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sim
from policies.evaluation.evaluate import env_config
from policies.vla_policy import VLAPolicy
from vla.data.dataset import VLADataset
from vla.data.meta import load_meta
from vla.model.config import LLMConfig, ModelConfig, VisionConfig
from vla.model.vla import VLA
from vla.train.data import fit_model_config

TASK = "PressButton"


def _model(image_size=(32, 32), **overrides) -> ModelConfig:
    return ModelConfig(
        vision=VisionConfig(kind="resnet18", width=32),
        llm=LLMConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        image_size=list(image_size),
        chunk_size=2,
        **overrides,
    )


def _stats(action_low: float, action_high: float) -> dict:
    return {
        "observation.state": {"q01": -np.ones(17), "q99": np.ones(17)},
        "action": {"q01": np.full(7, action_low), "q99": np.full(7, action_high)},
    }


def test_evaluation_frames_take_the_training_resize(make_dataset):
    """A model trained on 64x64 recordings at 32x32 asks the simulator for 64x64 frames and resizes them
    itself, so an evaluation frame and a training frame of the same picture reach the encoder identical."""
    root = make_dataset(image_size=(64, 64), episodes=1, lengths=[4])
    config = fit_model_config(_model(), load_meta(root))
    assert config.source_image_size == [64, 64]
    torch.manual_seed(0)
    policy = VLAPolicy.from_model(VLA(config, VLADataset(root).stats))
    assert env_config(policy, None).image_size == (64, 64)  # rendered as recorded, not at 32x32
    stored = VLADataset(root, chunk_size=2)[2]  # the decoded frame at its recorded size, (3, 64, 64)
    training = VLADataset(root, chunk_size=2, image_size=(32, 32))[2]  # what training fed the encoder
    obs = {
        "images": {camera: image.permute(1, 2, 0).numpy() for camera, image in stored["images"].items()},
        "state": stored["state"].numpy(),
        "instruction": stored["instruction"],
    }
    batch = policy.batch([obs])
    for camera in ("agentview", "wrist"):
        torch.testing.assert_close(batch["images"][camera][0], training["images"][camera], atol=0, rtol=0)


def test_a_checkpoint_without_a_recorded_size_renders_at_its_own():
    policy = VLAPolicy.from_model(VLA(_model((48, 48)), _stats(-1.0, 1.0)))
    assert policy.image_size == policy.model_image_size == (48, 48)


@pytest.fixture(scope="module")
def env():
    environment = sim.make(TASK, image_size=(32, 32))
    yield environment
    environment.close()


def test_actions_keep_the_dataset_units_and_a_mismatched_range_is_refused(env):
    """Absolute joint targets (here +-3) must not be squeezed into the environment's [-1, 1]: the policy is
    refused before the first step, with both ranges named, and never silently saturated."""
    torch.manual_seed(0)
    joints = VLAPolicy.from_model(VLA(_model(), _stats(-3.0, 3.0)))
    with pytest.raises(ValueError, match=r"dimension 0: \[-2\.988, 2\.988\] vs \[-1, 1\]"):
        joints.check_compatible(env)
    obs, _ = env.reset(seed=0)
    actions = joints.infer(obs)["actions"]
    low, high = joints.action_range
    assert np.all(actions >= low - 1e-6) and np.all(actions <= high + 1e-6)  # the dataset's units, unclipped
    fitting = VLAPolicy.from_model(VLA(_model(), _stats(-1.0, 1.0)))
    fitting.check_compatible(env)  # inside [-1, 1]: accepted


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_a_checkpoint_runs_in_the_asked_precision_and_refuses_another_decoding(tmp_path, decoding):
    """bf16 casts the LLM's weights, convolves under bf16 autocast, and still returns every action in range;
    asking a checkpoint for a decoding or a chunk size it was not trained with is refused with both named,
    before any inference."""
    torch.manual_seed(0)
    VLA(_model(decoding=decoding), _stats(-1.0, 1.0)).save(tmp_path / "ckpt")
    obs = {
        "images": {c: np.full((32, 32, 3), 90, np.uint8) for c in ("agentview", "wrist")},
        "state": np.zeros(17, np.float32),
        "instruction": "press the button",
    }
    fp32 = VLAPolicy(tmp_path / "ckpt", decoding=decoding)
    bf16 = VLAPolicy(tmp_path / "ckpt", precision="bf16", chunk_size=2)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert (
        bf16.model.llm.dtype == torch.bfloat16 and next(bf16.model.vision.parameters()).dtype == torch.float32
    )
    conv_dtypes = []
    for policy in (fp32, bf16):
        stem = policy.model.vision.backbones[0].stem[0]
        hook = stem.register_forward_hook(lambda module, args, out: conv_dtypes.append(out.dtype))
        actions = policy.infer(obs)["actions"]
        hook.remove()
        assert actions.shape == (2, 7) and actions.dtype == np.float32
        assert np.all(actions >= policy.action_range[0]) and np.all(actions <= policy.action_range[1])
    assert conv_dtypes == [torch.float32, torch.bfloat16]
    other = "parallel" if decoding == "autoregressive" else "autoregressive"
    with pytest.raises(ValueError, match=f"trained with decoding='{decoding}'; asked for decoding='{other}'"):
        VLAPolicy(tmp_path / "ckpt", decoding=other)
    with pytest.raises(ValueError, match="trained with chunk_size=2; asked for chunk_size=8"):
        VLAPolicy(tmp_path / "ckpt", chunk_size=8)
    with pytest.raises(ValueError, match="precision must be one of"):
        VLAPolicy(tmp_path / "ckpt", precision="fp16")
