"""A VLA checkpoint directory: everything inference needs, and nothing that is ever unpickled.

model.safetensors   every weight (tied tensors saved once)
config.json         the ModelConfig
stats.json          the dataset statistics the model normalizes with (state and action, all stats)
backbone/           the LLM's config.json and tokenizer files, to rebuild it without the internet
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.torch import load_model, save_model

from vla.data.layout import ACTION, STATE
from vla.model.backbone import load_backbone_files, save_backbone_files
from vla.model.config import ModelConfig

FILES = ("model.safetensors", "config.json", "stats.json", "backbone")
VISION_FILES = ("config.json", "preprocessor_config.json")


def save_vla(vla, directory) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(vla, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(dataclasses.asdict(vla.config), indent=2))
    kept = {f: {k: np.asarray(v).tolist() for k, v in vla.stats[f].items()} for f in (STATE, ACTION)}
    (directory / "stats.json").write_text(json.dumps(kept, indent=2))
    save_backbone_files(vla.backbone, directory / "backbone")
    if vla.config.vision.kind == "hf":  # the architecture and image statistics; the weights are above
        (directory / "vision").mkdir(exist_ok=True)
        for name in VISION_FILES:
            shutil.copy(Path(vla.config.vision.path) / name, directory / "vision" / name)


def load_vla(directory, cls, decoding: str | None = None, chunk_size: int | None = None):
    """The checkpoint in ``directory`` as ``cls``. ``decoding`` and ``chunk_size``, when given, are what the
    caller will run: a checkpoint trained otherwise is refused (its placeholders, or their number, differ)."""
    directory = Path(directory)
    missing = [name for name in FILES if not (directory / name).exists()]
    if missing:
        raise FileNotFoundError(f"checkpoint {directory} is missing {missing}")
    try:
        config = ModelConfig(**json.loads((directory / "config.json").read_text()))
        stats = json.loads((directory / "stats.json").read_text())
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"checkpoint {directory}: unreadable config.json or stats.json: {error}") from error
    asked = {"decoding": decoding, "chunk_size": chunk_size}
    for name, wanted in asked.items():
        if wanted is not None and wanted != getattr(config, name):
            raise ValueError(
                f"checkpoint {directory} was trained with {name}={getattr(config, name)!r}; asked for "
                f"{name}={wanted!r}: a model predicts only as it was trained (retrain with {name}={wanted!r}, "
                "or leave it unset to use the checkpoint's)"
            )
    if config.vision.kind == "hf":
        config.vision.path = str(directory / "vision")
    vla = cls(config, stats, load_backbone_files(directory / "backbone"), pretrained=False)
    try:
        load_model(vla, str(directory / "model.safetensors"), strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"checkpoint {directory / 'model.safetensors'} does not fit its config: {error}"
        ) from error
    return vla
