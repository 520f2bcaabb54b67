"""A VLA checkpoint directory: everything inference needs, and nothing that is ever unpickled.

model.safetensors   every weight (tied tensors saved once)
config.json         the ModelConfig
stats.json          the dataset statistics the model normalizes with (state and action, all stats)
backbone/           the LLM's config.json and tokenizer files, to rebuild it without the internet

Where a checkpoint is: ``resolve_checkpoint`` takes a checkpoint directory, a ``vla-train`` run directory (its
``checkpoints/last``), the run's ``checkpoints/`` or the ``last`` pointer file, the one rule of every command
that takes a checkpoint (``vla.train.checkpoint`` writes what it follows).
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

CHECKPOINTS = "checkpoints"  # <run>/checkpoints/<step>/ (vla.train.checkpoint)
LAST = "last"  # <run>/checkpoints/last: the name of the newest complete checkpoint
MODEL_FILE = "model.safetensors"
FILES = (MODEL_FILE, "config.json", "stats.json", "backbone")
VISION_FILES = ("config.json", "preprocessor_config.json")
# Options a checkpoint's config.json may still carry after they were removed, each at the value whose behaviour
# the code now always has: read as if absent. Any other value is an error (the model needs code now gone).
RETIRED = {("vision", "pyramid"): False}  # vision.pyramid, tried and reverted in issue 21 (r11)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit this run. Names the file and the field."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        super().__init__(f"{path}: {problem}")


def last_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint ``<out>/checkpoints/last`` names, or None when the run has none yet."""
    pointer = Path(out) / CHECKPOINTS / LAST
    if not pointer.exists():
        return None
    return follow_pointer(pointer)


def follow_pointer(pointer: Path) -> Path:
    """The checkpoint directory a ``last`` file names (beside it)."""
    name = pointer.read_text().strip()
    directory = pointer.parent / name
    if not name or "/" in name or not directory.is_dir():
        raise CheckpointError(pointer, f"names {name!r}, which is not a checkpoint directory beside it")
    return directory


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory ``path`` stands for: a checkpoint directory itself, a ``vla-train`` run
    directory (its ``checkpoints/last``), the run's ``checkpoints/`` directory, or the ``last`` pointer file.
    Every command that takes a checkpoint accepts these, so the path a user sees is the path that works."""
    path = Path(path)
    if (path / MODEL_FILE).is_file():
        return path
    # the pointer of a run directory, of its checkpoints/ directory, or the pointer itself
    for pointer in (path / CHECKPOINTS / LAST, path / LAST, path):
        if pointer.name == LAST and pointer.is_file():
            return follow_pointer(pointer)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path}: no such file or directory")
    raise FileNotFoundError(
        f"{path} is not a checkpoint: give a checkpoint directory (with {MODEL_FILE}), a vla-train run "
        f"directory, its {CHECKPOINTS}/ directory or its {CHECKPOINTS}/{LAST} file"
    )


def save_vla(vla, directory) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(vla, str(directory / MODEL_FILE))
    (directory / "config.json").write_text(json.dumps(dataclasses.asdict(vla.config), indent=2))
    kept = {f: {k: np.asarray(v).tolist() for k, v in vla.stats[f].items()} for f in (STATE, ACTION)}
    (directory / "stats.json").write_text(json.dumps(kept, indent=2))
    save_backbone_files(vla.backbone, directory / "backbone")
    if vla.config.vision.kind == "hf":  # the architecture and image statistics; the weights are above
        (directory / "vision").mkdir(exist_ok=True)
        for name in VISION_FILES:
            shutil.copy(Path(vla.config.vision.path) / name, directory / "vision" / name)


def _without_retired(raw: dict, directory: Path) -> dict:
    """config.json's fields without the ``RETIRED`` options; refused if one is set to another value."""
    for (section, key), inert in RETIRED.items():
        fields = raw.get(section)
        if isinstance(fields, dict) and key in fields:
            value = fields.pop(key)
            if value != inert:
                raise ValueError(
                    f"checkpoint {directory} was trained with {section}.{key}={value!r}, an option this version "
                    f"no longer has (only {inert!r} is still supported): retrain it with this version"
                )
    return raw


def load_vla(directory, cls, decoding: str | None = None, chunk_size: int | None = None):
    """The checkpoint in ``directory`` as ``cls``. ``decoding`` and ``chunk_size``, when given, are what the
    caller will run: a checkpoint trained otherwise is refused (its placeholders, or their number, differ)."""
    directory = Path(directory)
    missing = [name for name in FILES if not (directory / name).exists()]
    if missing:
        raise FileNotFoundError(f"checkpoint {directory} is missing {missing}")
    try:
        config = ModelConfig(
            **_without_retired(json.loads((directory / "config.json").read_text()), directory)
        )
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
        load_model(vla, str(directory / MODEL_FILE), strict=True)
    except RuntimeError as error:
        raise ValueError(f"checkpoint {directory / MODEL_FILE} does not fit its config: {error}") from error
    return vla
