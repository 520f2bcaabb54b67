"""The state encoder: with state_dropout 1 no state MLP exists, every trainable weight learns, and
checkpoints stay coherent."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from toy_vla import demo_model

from vla.data.dataset import VLADataset, collate
from vla.model.vla import VLA


@pytest.fixture
def samples(make_dataset):
    model = demo_model()
    data = VLADataset(
        make_dataset(episodes=2, lengths=[6, 5]),
        cameras=model.cameras,
        image_size=tuple(model.image_size),
        chunk_size=model.chunk_size,
    )
    return data, collate([data[i] for i in range(6)])


def build(data, **changes) -> VLA:
    """The demo's model, images only unless ``changes`` say otherwise (the demo itself shows the state)."""
    changes.setdefault("state_dropout", 1.0)
    torch.manual_seed(0)
    model = demo_model(*(f"train.model.{key}={value}" for key, value in changes.items()))
    return VLA(model, data.stats)


def test_the_images_only_demo_model_gives_every_trainable_weight_a_gradient(samples):
    """DDP (without find_unused_parameters) fails on a trainable weight that gets no gradient."""
    data, batch = samples
    vla = build(data)
    assert vla.config.state_dropout == 1.0 and vla.config.connector.kind == "keypoints"
    assert vla.goal_head is not None
    vla.train()
    vla.loss(batch)["loss"].backward()
    unused = [name for name, p in vla.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    names = [name for name, _ in vla.state_encoder.named_parameters()]
    assert names == ["missing"], "with state_dropout 1 only the learned 'no state' token is built"
    # A state the policy never reads cannot change its actions.
    moved = dict(batch, state=batch["state"] + 100.0)
    np.testing.assert_array_equal(vla.predict(batch), vla.predict(moved))


def test_a_partial_dropout_keeps_the_state_mlp(samples):
    data, batch = samples
    vla = build(data, state_dropout=0.5)
    vla.loss(batch)["loss"].backward()
    assert vla.state_encoder.net[0].weight.grad is not None
    assert {"missing", "net.0.weight"} <= {name for name, _ in vla.state_encoder.named_parameters()}


def test_a_checkpoint_without_state_mlp_round_trips(samples, tmp_path):
    data, batch = samples
    vla = build(data).eval()
    vla.save(tmp_path / "ckpt")
    assert not [
        k for k in load_file(tmp_path / "ckpt/model.safetensors") if k.startswith("state_encoder.net")
    ]
    np.testing.assert_array_equal(vla.predict(batch), VLA.load(tmp_path / "ckpt").predict(batch))


def test_an_older_checkpoint_with_the_unused_state_mlp_loads_the_same_policy(samples, tmp_path):
    """Checkpoints written before the MLP was left out hold its (never used) weights."""
    data, batch = samples
    vla = build(data).eval()
    vla.save(tmp_path / "ckpt")
    weights = load_file(tmp_path / "ckpt/model.safetensors")
    weights |= {
        "state_encoder.net.0.weight": torch.randn(256, 17),
        "state_encoder.net.2.bias": torch.zeros(64),
    }
    save_file(weights, tmp_path / "ckpt/model.safetensors")
    np.testing.assert_array_equal(vla.predict(batch), VLA.load(tmp_path / "ckpt").predict(batch))


def test_a_checkpoint_whose_config_needs_the_state_mlp_is_refused(samples, tmp_path):
    data, _ = samples
    build(data).save(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt/config.json").read_text())
    (tmp_path / "ckpt/config.json").write_text(json.dumps(config | {"state_dropout": 0.5}))
    with pytest.raises(ValueError, match=r"(?s)does not fit its config.*state_encoder\.net\.0\.weight"):
        VLA.load(tmp_path / "ckpt")
