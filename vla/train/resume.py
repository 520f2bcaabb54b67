"""Which checkpoint a run continues from, and whether it may.

A resume continues the same run: the same model, the same schedule and the same data. A checkpoint records
what made the run (``train_config.json``; in ``trainer_state.json`` the number of processes and a
fingerprint of the dataset), and a resume whose settings differ is refused with every difference named,
because it would silently train something else: a longer ``steps`` stretches the cosine and raises the
learning rate again, another batch size or seed reorders the samples, a topped-up dataset (more episodes
under the same path) changes what an epoch is. ``resume=force`` continues anyway; the model section can
never change, since the weights and the statistics they normalize with are the checkpoint's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from vla.data.layout import ACTION, STATE
from vla.data.meta import DatasetMeta
from vla.model.io import resolve_checkpoint
from vla.train import checkpoint as ckpt
from vla.train.config import RESUME_AUTO, RESUME_FORCE, RESUME_NEVER, TrainConfig

# What a resume must keep, beyond the model section: the schedule (with the global batch, so also the
# number of processes) and how the samples are drawn. Logging, validation, checkpointing, workers, the
# cache and the precision can change: they do not change what is trained.
SCHEDULE_FIELDS = (
    "steps",
    "batch_size",
    "grad_accum",
    "lr",
    "betas",
    "weight_decay",
    "warmup_steps",
    "min_lr_ratio",
    "grad_clip",
)
DATA_FIELDS = ("seed", "val_fraction", "early_frames", "early_repeat", "switch_repeat")
# Data settings added later, with the value every run before them had.
LATER_DEFAULTS = {"early_frames": 0, "early_repeat": 1, "switch_repeat": 1}
IGNORED_MODEL_FIELDS = ("llm.cache_dir",)  # where converted weights are cached: per machine, not per model
NOT_RECORDED = "not recorded (a checkpoint from an older vla-train)"


def find_resume(config: TrainConfig) -> Path | None:
    """The checkpoint this run continues from, per ``config.resume``; None starts afresh."""
    if config.resume not in (RESUME_AUTO, RESUME_NEVER, RESUME_FORCE):
        return resolve_checkpoint(config.resume)
    last = ckpt.last_checkpoint(config.out)
    if last is not None and config.resume == RESUME_NEVER:
        raise ValueError(
            f"{config.out} already holds a run (checkpoints/last -> {last.name}); "
            "pass resume=auto to continue it, or choose another out"
        )
    return last


def dataset_fingerprint(meta: DatasetMeta) -> dict:
    """Where the dataset is and what it holds: its totals and a digest of its metadata (info.json, the
    tasks, every committed episode's row, the statistics), which changes when an episode is added or
    re-recorded. The frames themselves are not read: that would take minutes on a large dataset."""
    content = {
        "info": meta.info,
        "tasks": meta.tasks,
        "episodes": meta.episodes,
        "stats": {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in meta.stats.items()},
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "path": str(Path(meta.root).resolve()),
        "total_episodes": meta.total_episodes,
        "total_frames": meta.total_frames,
        "meta_sha256": digest,
    }


def check_resumable(
    directory: Path, config: TrainConfig, meta: DatasetMeta, fingerprint: dict, num_processes: int
) -> dict:
    """Check that the checkpoint is complete and that this run continues it (``resume=force`` skips the
    schedule and data checks, not the model's); return its trainer state."""
    ckpt.require_files(directory)
    path = directory / ckpt.TRAIN_CONFIG
    saved = ckpt.read_json(path)
    _check_model(ckpt.field(saved, "model", path), config, meta, path)
    state_path = directory / ckpt.TRAINER_STATE
    state = ckpt.read_json(state_path)
    for key in ("step", "position", "optimizer", "rng"):
        ckpt.field(state, key, state_path)
    if config.resume == RESUME_FORCE:
        return state
    then = {name: saved.get(name, LATER_DEFAULTS.get(name)) for name in SCHEDULE_FIELDS + DATA_FIELDS}
    then["num_processes"] = state.get("num_processes")
    then |= {f"dataset.{k}": (state.get("dataset") or {}).get(k) for k in fingerprint}
    now = {name: getattr(config, name) for name in SCHEDULE_FIELDS + DATA_FIELDS}
    now["num_processes"] = num_processes
    now |= {f"dataset.{k}": v for k, v in fingerprint.items()}
    differ = [
        f"{key}: {NOT_RECORDED if then[key] is None else repr(then[key])} vs {now[key]!r}"
        for key in now
        if then[key] != now[key]
    ]
    if differ:
        raise ckpt.CheckpointError(
            directory,
            "this run is not the one the checkpoint continues (field: checkpoint vs now): "
            + "; ".join(differ)
            + ". Pass resume=force to continue it with the new settings, or choose another out to start afresh",
        )
    return state


def _check_model(saved: dict, config: TrainConfig, meta: DatasetMeta, path: Path) -> None:
    for name, feature in (("action_dim", ACTION), ("state_dim", STATE)):
        found = getattr(config.model, name)
        if ckpt.field(saved, name, path) != found:
            raise ckpt.CheckpointError(
                path,
                f"model.{name} is {saved[name]}, but the dataset at {meta.root} has {found} "
                f"('{feature}' in its info.json)",
            )
    ours = _flatten(dataclasses.asdict(config.model))
    theirs = _flatten(saved)
    differ = [
        f"model.{key}: checkpoint {theirs.get(key)!r}, this run {ours.get(key)!r}"
        for key in sorted(set(ours) | set(theirs))
        if key not in IGNORED_MODEL_FIELDS and ours.get(key) != theirs.get(key)
    ]
    if differ:
        raise ckpt.CheckpointError(
            path,
            "this run's model differs from the checkpoint's: "
            + "; ".join(differ)
            + " (the model is the checkpoint's, even with resume=force: train another one in another out)",
        )


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
