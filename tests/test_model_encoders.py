"""Vision encoders and connectors: shapes, camera embeddings, freezing, local HF folders, gradient flow."""

from __future__ import annotations

import json

import pytest
import torch

from vla.model.config import ConnectorConfig, VisionConfig
from vla.model.connector import build_connector
from vla.model.vision import build_vision_encoder

SIZE = (32, 32)
SMALL = {"resnet18": {"width": 32}, "vit": {"width": 32, "patch": 16, "depth": 1, "heads": 2}}
CAMERAS = {1: ["agentview"], 2: ["agentview", "wrist"]}


def images(batch: int, cameras: int, size=SIZE, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, cameras, 3, *size), dtype=torch.uint8, generator=generator)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny random SigLIP vision model saved as a local folder (native 32 px, 8 px patches, 16 patches)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    config = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    folder = tmp_path_factory.mktemp("siglip")
    SiglipVisionModel(config).save_pretrained(folder)
    processor = {
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "size": {"height": 32, "width": 32},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.fixture(scope="module")
def dinov2_folder(tmp_path_factory):
    """A tiny random DINOv2 (class token first; processor: resize 40 then center-crop 32)."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=24,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=64,
        patch_size=8,
    )
    folder = tmp_path_factory.mktemp("dinov2")
    Dinov2Model(config).save_pretrained(folder)
    processor = {
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "size": {"shortest_edge": 40},
        "do_center_crop": True,
        "crop_size": {"height": 32, "width": 32},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def vision_config(kind: str, shared: bool, frozen: bool = False, path=None) -> VisionConfig:
    return VisionConfig(
        kind=kind,
        path=None if path is None else str(path),
        shared=shared,
        frozen=frozen,
        **SMALL.get(kind, {}),
    )


@pytest.mark.parametrize("cameras", [1, 2])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("kind", ["resnet18", "vit", "hf"])
def test_encoder_and_connector_shapes(kind, shared, cameras, hf_folder):
    encoder = build_vision_encoder(vision_config(kind, shared, path=hf_folder), SIZE, CAMERAS[cameras])
    expected_patches = {"resnet18": 1, "vit": 4, "hf": 16}[kind]  # 32/32 cells, (32/16)^2, (32/8)^2
    assert encoder.num_patches == expected_patches
    assert len(encoder.backbones) == (1 if shared else cameras)
    features = encoder(images(2, cameras))
    assert features.shape == (2, cameras, encoder.num_patches, encoder.out_dim)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    for connector_cfg, per_camera in (
        (ConnectorConfig("mlp"), encoder.num_patches),
        (ConnectorConfig("resampler", 3, 1, 2), 3),
        (ConnectorConfig("keypoints", 2, keypoints=5), 2),
    ):
        if connector_cfg.kind == "keypoints" and encoder.num_patches == 1:
            continue  # a single cell has no position (refused: see test_bad_input_is_a_clear_value_error)
        connector = build_connector(connector_cfg, encoder.out_dim, 40, encoder.num_patches, encoder.grid)
        assert connector.tokens_per_camera == per_camera
        assert connector(features).shape == (2, cameras * per_camera, 40)


def test_resnet_patches_are_the_last_feature_map_cells():
    encoder = build_vision_encoder(vision_config("resnet18", True), (128, 96), ["agentview"])
    assert encoder.num_patches == 4 * 3 and encoder.out_dim == 32
    assert encoder(images(1, 1, (128, 96))).shape == (1, 1, 12, 32)


@pytest.mark.parametrize("kind", ["resnet18", "vit", "hf"])
def test_camera_embedding_tells_identical_images_apart(kind, hf_folder):
    encoder = build_vision_encoder(vision_config(kind, shared=True, path=hf_folder), SIZE, CAMERAS[2])
    same = images(1, 1).expand(1, 2, 3, *SIZE).contiguous()  # one image in both camera slots
    features = encoder(same)
    assert not torch.allclose(features[:, 0], features[:, 1])
    # ... and the difference is exactly the camera embedding (the shared backbone saw the same pixels).
    difference = features[:, 0] - features[:, 1]
    expected = (encoder.camera_embedding[0] - encoder.camera_embedding[1]).expand_as(difference)
    torch.testing.assert_close(difference, expected)


@pytest.mark.parametrize("kind", ["resnet18", "vit", "hf"])
def test_frozen_encoder_gets_no_gradients_and_stays_in_eval_mode(kind, hf_folder):
    encoder = build_vision_encoder(
        vision_config(kind, shared=False, frozen=True, path=hf_folder), SIZE, CAMERAS[2]
    )
    encoder.train()
    assert encoder.training and not any(module.training for module in encoder.backbones.modules())
    assert not any(p.requires_grad for p in encoder.backbones.parameters())
    connector = build_connector(ConnectorConfig("mlp"), encoder.out_dim, 16, encoder.num_patches)
    connector(encoder(images(2, 2))).square().mean().backward()
    assert all(p.grad is None for p in encoder.backbones.parameters())
    assert encoder.camera_embedding.grad is not None  # new, never pretrained: stays trainable


@pytest.mark.parametrize("connector_kind", ["mlp", "resampler", "keypoints"])
@pytest.mark.parametrize("kind", ["resnet18", "vit", "hf"])
def test_gradients_flow_from_connector_to_unfrozen_encoder(kind, connector_kind, hf_folder):
    size = (64, 64) if kind == "resnet18" else SIZE  # keypoints need more than the 1x1 grid of 32 px
    encoder = build_vision_encoder(vision_config(kind, shared=True, path=hf_folder), size, CAMERAS[2])
    connector = build_connector(
        ConnectorConfig(connector_kind, 4, 1, 2), encoder.out_dim, 16, encoder.num_patches, encoder.grid
    )
    connector(encoder(images(2, 2, size))).square().mean().backward()
    parameters = list(encoder.parameters()) + list(connector.parameters())
    missing = [p.shape for p in parameters if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


def test_hf_folder_uses_its_normalization_and_drops_the_pooling_head(hf_folder):
    encoder = build_vision_encoder(vision_config("hf", True, path=hf_folder), SIZE, CAMERAS[1])
    torch.testing.assert_close(encoder.mean.flatten(), torch.full((3,), 0.5))
    torch.testing.assert_close(encoder.std.flatten(), torch.full((3,), 0.5))
    assert not any(".head." in name for name, _ in encoder.named_parameters())
    # Same features as running the saved model by hand on SigLIP-normalized pixels.
    from transformers import SiglipVisionModel

    reference = SiglipVisionModel.from_pretrained(hf_folder).eval()
    pixels = images(1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=pixels[:, 0].float() / 127.5 - 1).last_hidden_state
        features = encoder.eval()(pixels)[:, 0] - encoder.camera_embedding[0]
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-4)


def test_dinov2_folder_resizes_to_its_crop_size_and_drops_the_class_token(dinov2_folder):
    encoder = build_vision_encoder(vision_config("hf", True, path=dinov2_folder), (48, 64), CAMERAS[2])
    assert encoder.num_patches == 16 and encoder.out_dim == 24  # (32/8)^2 at the 32 px crop size
    torch.testing.assert_close(encoder.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert encoder(images(1, 2, (48, 64))).shape == (1, 2, 16, 24)


def test_resampler_token_count_is_independent_of_patch_count():
    cfg = ConnectorConfig("resampler", num_queries=5, depth=2, heads=2)
    for patches in (1, 16, 64):
        connector = build_connector(cfg, 12, 8, patches)
        assert connector.tokens_per_camera == 5
        assert connector(torch.randn(3, 2, patches, 12)).shape == (3, 10, 8)


@pytest.mark.parametrize(("stages", "grid", "channels"), [(4, (2, 2), 32), (3, (4, 4), 16), (2, (8, 8), 8)])
def test_fewer_resnet_stages_give_a_finer_feature_grid(stages, grid, channels):
    cfg = VisionConfig(kind="resnet18", width=32, stages=stages)
    encoder = build_vision_encoder(cfg, (64, 64), CAMERAS[1])
    assert encoder.grid == grid and encoder.num_patches == grid[0] * grid[1] and encoder.out_dim == channels
    assert encoder(images(1, 1, (64, 64))).shape == (1, 1, grid[0] * grid[1], channels)


def test_keypoints_are_where_their_feature_is_on_the_grid():
    # A feature present in one patch only: every keypoint that responds to it lands on that patch's centre,
    # in x (column) then y (row), each from -1 (left, top) to 1 (right, bottom) of the (h, w) = (3, 4) grid.
    connector = build_connector(ConnectorConfig("keypoints", 1, keypoints=1), 2, 8, 12, (3, 4))
    with torch.no_grad():
        connector.maps.weight.copy_(torch.tensor([[50.0, 0.0]]))
        connector.maps.bias.zero_()
    for row, col in ((0, 0), (2, 3), (1, 2)):
        features = torch.zeros(1, 12, 2)
        features[0, row * 4 + col, 0] = 1.0
        weights = connector.maps(features).softmax(dim=1)
        point = (weights.transpose(1, 2) @ connector.positions)[0, 0]
        torch.testing.assert_close(
            point, torch.tensor([-1 + col * 2 / 3, -1 + row * 2 / 2]), atol=1e-3, rtol=0
        )
    moved = torch.zeros(1, 1, 12, 2)
    moved[0, 0, 11, 0] = 1.0
    assert not torch.allclose(connector(moved), connector(torch.roll(moved, -11, dims=2))), "position is lost"


def test_mlp_connector_keeps_camera_order():
    connector = build_connector(ConnectorConfig("mlp"), 6, 4, 3)
    features = torch.randn(1, 2, 3, 6)
    tokens = connector(features)  # (1, 6, 4): camera 0's 3 tokens, then camera 1's
    torch.testing.assert_close(tokens[:, 3:], connector(features[:, 1:2]))


def test_bad_input_is_a_clear_value_error(tmp_path, hf_folder):
    with pytest.raises(ValueError, match=r"vision.kind"):
        VisionConfig(kind="resnet50")
    with pytest.raises(ValueError, match=r"vision.path"):
        VisionConfig(kind="hf")
    with pytest.raises(ValueError, match="not a directory"):
        build_vision_encoder(VisionConfig(kind="hf", path=str(tmp_path / "missing")), SIZE, CAMERAS[1])
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"preprocessor_config.json"):
        build_vision_encoder(VisionConfig(kind="hf", path=str(tmp_path)), SIZE, CAMERAS[1])
    with pytest.raises(ValueError, match=r"divisible by vision.patch"):
        build_vision_encoder(VisionConfig(kind="vit", patch=16), (40, 40), CAMERAS[1])
    cfg = VisionConfig()
    cfg.kind = "resnet50"  # set after validation, e.g. by a caller mutating the dataclass
    with pytest.raises(ValueError, match=r"vision.kind"):
        build_vision_encoder(cfg, SIZE, CAMERAS[1])
    with pytest.raises(ValueError, match=r"connector.kind"):
        ConnectorConfig(kind="qformer")
    with pytest.raises(ValueError, match=r"divisible by connector.heads"):
        build_connector(ConnectorConfig("resampler", heads=3), 8, 16, 4)
    with pytest.raises(ValueError, match=r"feature grid"):
        build_connector(ConnectorConfig("keypoints"), 8, 16, 4)  # no grid
    with pytest.raises(ValueError, match=r"feature grid"):
        build_connector(ConnectorConfig("keypoints"), 8, 16, 4, (3, 3))
    with pytest.raises(ValueError, match=r"at least 2 patches"):
        build_connector(ConnectorConfig("keypoints"), 8, 16, 1, (1, 1))
    with pytest.raises(ValueError, match=r"keypoints"):
        ConnectorConfig("keypoints", keypoints=0)
    with pytest.raises(ValueError, match=r"vision.stages"):
        VisionConfig(stages=5)
    with pytest.raises(ValueError, match=r"vision.stages"):
        VisionConfig(kind="vit", stages=3)


def test_wrong_images_are_a_clear_value_error():
    encoder = build_vision_encoder(vision_config("resnet18", True), SIZE, CAMERAS[2])
    with pytest.raises(ValueError, match="uint8"):
        encoder(images(1, 2).float())
    with pytest.raises(ValueError, match="agentview"):
        encoder(images(1, 1))  # one camera where two are configured
    with pytest.raises(ValueError, match="features"):
        build_connector(ConnectorConfig("mlp"), 8, 4, 16)(torch.randn(1, 2, 9, 8))


def test_hf_architecture_without_weights_loads_a_checkpoint(tmp_path, hf_folder):
    """pretrained=False needs only config.json + preprocessor_config.json (what a checkpoint carries)."""
    for name in ("config.json", "preprocessor_config.json"):
        (tmp_path / name).write_text((hf_folder / name).read_text())
    trained = build_vision_encoder(vision_config("hf", True, path=hf_folder), SIZE, CAMERAS[2]).eval()
    rebuilt = build_vision_encoder(
        vision_config("hf", True, path=tmp_path), SIZE, CAMERAS[2], pretrained=False
    )
    pixels = images(1, 2)
    assert not torch.allclose(rebuilt.eval()(pixels), trained(pixels))
    rebuilt.load_state_dict(trained.state_dict())
    torch.testing.assert_close(rebuilt(pixels), trained(pixels))


def test_random_shift_moves_each_image_by_at_most_pad_pixels_with_replicated_borders():
    from vla.model.augment import random_shift

    batch = images(6, 1, size=(16, 16))[:, 0]  # (M, 3, H, W)
    torch.manual_seed(0)
    shifted = random_shift(batch, 3)
    assert shifted.shape == batch.shape and shifted.dtype == torch.uint8
    padded = torch.nn.functional.pad(batch.float(), (3, 3, 3, 3), mode="replicate")
    offsets = []
    for m in range(len(batch)):
        found = [
            (dy, dx)
            for dy in range(7)
            for dx in range(7)
            if torch.equal(padded[m, :, dy : dy + 16, dx : dx + 16], shifted[m].float())
        ]
        assert found, f"image {m} is not a shifted copy of its input"
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # independent offsets per image
    assert torch.equal(random_shift(batch, 0), batch)


def test_random_shift_applies_in_training_only():
    encoder = build_vision_encoder(VisionConfig(kind="resnet18", width=32, random_shift=4), SIZE, CAMERAS[2])
    x = images(2, 2)
    encoder.eval()
    assert torch.equal(encoder(x), encoder(x))  # inference never shifts
    encoder.train()
    assert not torch.allclose(encoder(x), encoder(x))
    with pytest.raises(ValueError, match="random_shift"):
        VisionConfig(random_shift=-1)


def test_coordinate_channels_let_the_resnet_tell_identical_patches_at_different_places_apart():
    from vla.model.resnet import ResNet18GN

    torch.manual_seed(0)
    flat = torch.zeros(1, 3, 64, 64)  # a uniform image: every cell looks the same to a plain CNN
    plain = ResNet18GN(32, (64, 64))(flat)[0]  # (P, C)
    located = ResNet18GN(32, (64, 64), coords=True)(flat)[0]
    assert located.shape == plain.shape
    assert (located[0] - located[-1]).abs().max() > 10 * (plain[0] - plain[-1]).abs().max() + 1e-6
    with pytest.raises(ValueError, match="coords"):
        VisionConfig(kind="vit", coords=True)


def test_the_channels_last_stem_gives_the_plain_nchw_stem_s_features_and_gradients():
    from vla.model.resnet import ResNet18GN

    torch.manual_seed(0)
    net = ResNet18GN(32, (64, 64), coords=True, stages=2)
    x = torch.randn(3, 3, 64, 64, requires_grad=True)
    fast_features, fast_stem = net(x, with_stem=True)
    (fast_grad,) = torch.autograd.grad(fast_features.square().sum() + fast_stem.sum(), x)

    def plain(x):  # the stem as nn.Sequential would run it in NCHW, max-pool included
        h = torch.cat(
            [
                x,
                torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 64)] * 2, indexing="xy"))[None].expand(
                    len(x), -1, -1, -1
                ),
            ],
            1,
        )
        conv, norm, relu, _ = net.stem
        stem = torch.nn.functional.max_pool2d(relu(norm(conv(h))), 3, 2, 1)
        h = stem
        for block in net.stages:
            h = block(h)
        return h.flatten(2).transpose(1, 2), stem.flatten(2).transpose(1, 2)

    features, stem = plain(x)
    (grad,) = torch.autograd.grad(features.square().sum() + stem.sum(), x)
    assert fast_features.shape == features.shape and fast_stem.shape == stem.shape
    torch.testing.assert_close(fast_features, features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_stem, stem, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_grad, grad, rtol=1e-4, atol=1e-5)


def test_state_dropout_hides_some_states_in_training_and_none_in_evaluation():
    from vla.model.state import StateEncoder

    torch.manual_seed(0)
    encoder = StateEncoder(state_dim=5, out_dim=8, dropout=0.5)
    torch.nn.init.normal_(encoder.missing)
    state = torch.randn(64, 5)
    hidden = (encoder(state)[:, 0] == encoder.missing).all(dim=1)  # (64,)
    assert 10 < int(hidden.sum()) < 54  # about half
    encoder.eval()
    assert not (encoder(state)[:, 0] == encoder.missing).all(dim=1).any()
    assert encoder(state).shape == (64, 1, 8)


def test_state_dropout_one_never_reads_the_state():
    from vla.model.state import StateEncoder

    encoder = StateEncoder(state_dim=5, out_dim=8, dropout=1.0)
    for training in (True, False):
        encoder.train(training)
        tokens = encoder(torch.randn(4, 5))
        assert tokens.shape == (4, 1, 8) and torch.equal(tokens, encoder(torch.randn(4, 5)))
    tokens.sum().backward()
    assert encoder.missing.grad is not None


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_state_dropout_must_be_a_probability(value):
    from vla.model.config import ModelConfig

    with pytest.raises(ValueError, match="state_dropout must be a probability"):
        ModelConfig(state_dropout=value)
