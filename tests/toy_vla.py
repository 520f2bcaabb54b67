"""The trainer tests' stand-in model (``ToyVLA``, the VLA interface without the LLM stack) and config."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vla.model.config import ModelConfig
from vla.train import checkpoint as ckpt
from vla.train.config import TrainConfig


class ToyVLA(nn.Module):
    """Pooled pixels + normalized state -> an MLP (with dropout, so resume must restore the RNG) -> the
    normalized action chunk; per-sample losses averaged over the batch (no batch-dependent layer)."""

    DROPOUT = 0.2

    def __init__(self, config: ModelConfig, stats):
        super().__init__()
        self.config = config
        cams, k, a = len(config.cameras), config.chunk_size, config.action_dim
        self.vision = nn.Linear(3, 8)
        self.camera_embedding = nn.Parameter(torch.randn(cams, 8) * 0.1)
        self.norm = nn.LayerNorm(8 * cams + config.state_dim)
        self.head = nn.Sequential(
            nn.Linear(8 * cams + config.state_dim, 32),
            nn.GELU(),
            nn.Dropout(self.DROPOUT),
            nn.Linear(32, k * a),
        )
        for name, key in (("state", "observation.state"), ("action", "action")):
            for stat in ("mean", "std"):
                value = np.zeros(1) if stats is None else stats[key][stat]
                self.register_buffer(f"{name}_{stat}", torch.as_tensor(value, dtype=torch.float32))
        if config.vision.frozen:
            self.vision.requires_grad_(False)

    def loss(self, batch):
        pooled = [
            self.vision(batch["images"][c].float().mean((2, 3)) / 255) + self.camera_embedding[i]
            for i, c in enumerate(self.config.cameras)
        ]
        state = (batch["state"] - self.state_mean) / (self.state_std + 1e-6)
        pred = self.head(self.norm(torch.cat([*pooled, state], -1))).view(batch["actions"].shape)
        target = (batch["actions"] - self.action_mean) / (self.action_std + 1e-6)
        mask = batch["action_mask"].float()[..., None].expand_as(pred)

        def per_sample_mean(x):
            return ((x * mask).sum((1, 2)) / mask.sum((1, 2))).mean()

        error = pred - target
        actions = pred * (self.action_std + 1e-6) + self.action_mean
        return {
            "loss": per_sample_mean(error**2),
            "token_accuracy": per_sample_mean((error.abs() < 0.1).float()),
            "l1": per_sample_mean((actions - batch["actions"]).abs()),
        }

    def save(self, directory):
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps(dataclasses.asdict(self.config)))

    @classmethod
    def load(cls, directory):
        model = cls(ModelConfig(**json.loads((directory / "config.json").read_text())), None)
        weights = load_file(directory / "model.safetensors")
        for name in ("state_mean", "state_std", "action_mean", "action_std"):
            getattr(model, name).resize_(weights[name].shape)
        model.load_state_dict(weights)
        return model


class NoDropoutToy(ToyVLA):
    DROPOUT = 0.0


def make_config(dataset, out, **overrides) -> TrainConfig:
    model = ModelConfig(**({"image_size": [32, 32], "chunk_size": 4} | overrides.pop("model", {})))
    settings = dict(
        steps=4, batch_size=4, lr=1e-2, warmup_steps=1, save_every=2, log_every=1, val_every=2, val_batches=2,
        val_fraction=0.25, deterministic=True,
    )  # fmt: skip
    return TrainConfig(model=model, dataset=str(dataset), out=str(out), **(settings | overrides))


def weights(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / ckpt.MODEL_FILE)


SMALL = [  # vla-demo overrides: its model (train.model) at a test's size
    "train.model.image_size=[32,32]",
    "train.model.vision.width=32",
    "train.model.llm.hidden_size=64",
    "train.model.llm.num_layers=2",
    "train.model.llm.num_heads=2",
    "train.model.llm.intermediate_size=128",
]


def small_model(**changes) -> ModelConfig:
    """The tiny VLA at a test's size (32 px images, a narrow ResNet, a 2-layer LLM), MLP connector, chunk 4;
    ``changes``: other ModelConfig fields."""
    from vla.model.config import ConnectorConfig, LLMConfig, VisionConfig

    fields = {
        "vision": VisionConfig(kind="resnet18", width=32),
        "connector": ConnectorConfig(kind="mlp"),
        "llm": LLMConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
        "image_size": [32, 32],
        "chunk_size": 4,
    }
    return ModelConfig(**{**fields, **changes})


def demo_model(*overrides: str) -> ModelConfig:
    """The model section (``train.model``) of the ``vla-demo`` preset (configs/demo.yaml) at a test's size:
    its connector, state dropout, goal loss, chunk and bin settings, with small images, vision and LLM;
    ``overrides``: more vla-demo overrides (``train.model.chunk_size=4``)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import policies.apps.demo  # noqa: F401  (registers the preset's schema)

    with initialize_config_module("configs", version_base="1.3"):
        demo = compose("demo", overrides=[*SMALL, *overrides])
    return OmegaConf.to_object(demo).model
