"""The training data: the model configuration fitted to the dataset, the episode split, the DataLoaders."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader

from vla.data.dataset import VLADataset, collate, stored_size
from vla.data.gripper import GRIPPER, gripper_column, gripper_switches
from vla.data.layout import ACTION, INFO_PATH, STATE, DatasetError, camera_of, image_key
from vla.data.meta import DatasetMeta
from vla.model.config import ModelConfig
from vla.train.sampler import ResumableBatchSampler

DEFAULTS = ModelConfig()


def feature_dim(meta: DatasetMeta, key: str) -> int:
    """The length of a 1-D feature (``observation.state``, ``action``) from info.json."""
    feature = meta.features.get(key)
    if feature is None:
        raise DatasetError(meta.root / INFO_PATH, f"no '{key}' feature; a VLA dataset needs one")
    shape = feature.get("shape")
    if not isinstance(shape, list) or len(shape) != 1:
        raise DatasetError(meta.root / INFO_PATH, f"feature '{key}' has shape {shape!r}, expected [n]")
    return int(shape[0])


def fit_model_config(model: ModelConfig, meta: DatasetMeta) -> ModelConfig:
    """``model`` with state_dim/action_dim taken from the dataset; its cameras checked against it.

    A dimension left at its default is filled in; one set to anything else must match the dataset."""
    dims = {"state_dim": feature_dim(meta, STATE), "action_dim": feature_dim(meta, ACTION)}
    for name, found in dims.items():
        asked = getattr(model, name)
        if asked not in (found, getattr(DEFAULTS, name)):
            raise ValueError(f"model.{name} is {asked} but the dataset at {meta.root} has {found}")
    available = [camera_of(key) for key in meta.camera_keys]
    missing = [camera for camera in model.cameras if camera not in available]
    if missing:
        raise ValueError(
            f"model.cameras {model.cameras}: {missing} not in the dataset at {meta.root}, "
            f"which has cameras {available} (set model.cameras=[...] to a subset of them)"
        )
    sizes = {stored_size(meta.features[image_key(camera)]) for camera in model.cameras}
    source = list(sizes.pop()) if len(sizes) == 1 else None  # what evaluation should render (ModelConfig)
    return replace(model, **dims, source_image_size=source)


def split_episodes(total: int, val_fraction: float) -> tuple[list[int], list[int]]:
    """(train, validation) episode indices: the last ``round(val_fraction * total)`` episodes (at least one
    when val_fraction > 0) are held out."""
    held = 0 if val_fraction == 0 else max(1, round(val_fraction * total))
    if held >= total:
        raise ValueError(
            f"val_fraction {val_fraction} holds out {held} of {total} episodes, leaving none to train on"
        )
    return list(range(total - held)), list(range(total - held, total))


def make_datasets(
    root,
    model: ModelConfig,
    meta: DatasetMeta,
    val_fraction: float,
    cache,
    early_frames: int = 0,
    early_repeat: int = 1,
    switch_repeat: int = 1,
) -> tuple[VLADataset, VLADataset | None]:
    """(train, validation) datasets; the train set visits each episode's first ``early_frames`` frames
    ``early_repeat`` times, and each frame where the gripper label switches ``switch_repeat`` times
    (validation stays one visit per frame, so its loss is comparable)."""
    train_episodes, val_episodes = split_episodes(meta.total_episodes, val_fraction)
    options = {
        "cameras": list(model.cameras),
        "image_size": tuple(model.image_size),
        "chunk_size": model.chunk_size,
        "cache": cache,
    }
    train = VLADataset(root, episodes=train_episodes, **options)
    extra = []
    if early_frames and early_repeat > 1:
        early = train.rows[train.table.frame_index[train.rows] < early_frames]
        extra += [early] * (early_repeat - 1)
    if switch_repeat > 1:
        column = gripper_column(meta)
        if column is None:
            names = list(meta.features["action"].get("names") or [])
            raise ValueError(
                f"switch_repeat needs an action named {GRIPPER!r}; the dataset's actions are {names}"
            )
        switches = train.rows[gripper_switches(train.table, column)[train.rows]]
        extra += [switches] * (switch_repeat - 1)
    train.rows = np.concatenate([train.rows, *extra])
    val = VLADataset(root, episodes=val_episodes, **options) if val_episodes else None
    return train, val


def make_loader(dataset, batch_sampler, num_workers: int, seed: int) -> DataLoader:
    """A DataLoader over ``batch_sampler`` (a ResumableBatchSampler or a list of index lists).

    Workers are spawned (forking after torch/decoders started threads can hang) and persistent, so a
    new pass does not pay their start-up again. The loader gets its own generator so that starting a pass
    never draws from the global torch RNG, whose state a checkpoint restores."""
    workers = {}
    if num_workers > 0:
        workers = {
            "multiprocessing_context": multiprocessing.get_context("spawn"),
            "persistent_workers": True,
        }
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
        **workers,
    )


def to_device(batch, device: torch.device):
    """A batch (nested dicts of tensors, lists of strings) with every tensor on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def train_batches(loader: DataLoader, sampler: ResumableBatchSampler):
    """Batches forever, epoch after epoch, advancing ``sampler.position`` by each batch as it is handed
    out (not as workers prefetch it), so the position always says what the loop has consumed."""
    while True:
        for batch in loader:
            sampler.position.sample += sampler.global_batch
            yield batch
        sampler.position.epoch += 1
        sampler.position.sample = 0
