"""Checkpoints of a training run, readable without unpickling anything.

    <out>/checkpoints/<step:06d>/
        model.safetensors, config.json, stats.json, backbone/tokenizer files   written by the model's save()
        train_config.json        the fully resolved TrainConfig (model section fitted to the dataset)
        optimizer.safetensors    every optimizer state tensor, keyed "<parameter name>/<state key>"
        trainer_state.json       step, sampler position, schedule, optimizer hyper-parameters and scalar
                                 state, numpy/Python RNG states (one entry per process)
        rng_state_<rank>.safetensors   torch CPU/CUDA RNG states (uint8) of process <rank>
        README.md                the model card (vla/train/card.py): data, recipe, steps, machine, time;
                                 vla-eval and vla-demo append their evaluations to it
    <out>/checkpoints/last       the name of the newest complete checkpoint directory (written atomically)

Following ``last`` (``resolve_checkpoint``, ``last_checkpoint``) lives beside loading, in ``vla.model.io``, so
that loading a model never goes through the trainer's package.

A checkpoint is assembled in a hidden staging directory and renamed into place before ``last`` moves to it,
so ``last`` only ever names a complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vla.data.atomic import atomic_path, write_json_atomic
from vla.model.io import CHECKPOINTS, LAST, MODEL_FILE, CheckpointError, last_checkpoint
from vla.train.schedule import ParamGroup

TRAIN_CONFIG = "train_config.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE = "trainer_state.json"
RNG_FILE = "rng_state_{rank}.safetensors"
REQUIRED = (MODEL_FILE, TRAIN_CONFIG, OPTIMIZER_FILE, TRAINER_STATE, RNG_FILE.format(rank=0))
FORMAT_VERSION = 1
TUPLE_HYPERPARAMETERS = ("betas",)  # JSON turns tuples into lists; torch's AdamW keeps betas a tuple


def checkpoint_name(step: int) -> str:
    return f"{step:06d}"


def write_last(out: str | Path, name: str) -> None:
    with atomic_path(Path(out) / CHECKPOINTS / LAST) as tmp:
        tmp.write_text(name + "\n")


def staging_dir(out: str | Path, step: int) -> Path:
    return Path(out) / CHECKPOINTS / f".{checkpoint_name(step)}.staging"


def publish(out: str | Path, step: int) -> Path:
    """Move a complete staging directory into place and point ``last`` at it."""
    final = Path(out) / CHECKPOINTS / checkpoint_name(step)
    if final.exists():  # left by an earlier run that did not get to move ``last`` past it
        shutil.rmtree(final)
    os.replace(staging_dir(out, step), final)
    write_last(out, final.name)
    return final


def prune(out: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (0 keeps all); ``last``'s target always stays."""
    root = Path(out) / CHECKPOINTS
    steps = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    current = last_checkpoint(out)
    doomed = [p for p in steps[:-keep] if p != current] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def read_json(path: Path):
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(path, f"not valid JSON ({error})") from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(path, f"not a readable safetensors file ({error})") from None


def require_files(directory: Path) -> None:
    for name in REQUIRED:
        if not (directory / name).is_file():
            raise CheckpointError(directory / name, "file not found; the checkpoint is incomplete")


def field(data: dict, key: str, path: Path):
    if key not in data:
        raise CheckpointError(path, f"missing field '{key}'")
    return data[key]


# The optimizer: tensors to safetensors keyed by parameter name, everything else to JSON.


def optimizer_state(optimizer: torch.optim.Optimizer, groups: list[ParamGroup]):
    """(tensors for optimizer.safetensors, JSON-able rest) of ``optimizer``, built over ``groups``."""
    names = [name for group in groups for name in group.names]  # optimizer index -> parameter name
    saved = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, state in saved["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{names[index]}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(names[index], {})[key] = value
    param_groups = [
        {**{k: list(v) if isinstance(v, tuple) else v for k, v in group.items() if k != "params"}}
        | {"params": [names[i] for i in group["params"]]}
        for group in saved["param_groups"]
    ]
    return tensors, {"param_groups": param_groups, "scalars": scalars}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, groups: list[ParamGroup], params: dict, directory: Path, plain: dict
) -> None:
    """Load optimizer.safetensors + the JSON part into ``optimizer``, checking every name and shape."""
    path, state_path = directory / OPTIMIZER_FILE, directory / TRAINER_STATE
    index = {name: i for i, name in enumerate(name for group in groups for name in group.names)}
    saved_groups = field(plain, "param_groups", state_path)
    saved_names = [group.get("params", []) for group in saved_groups]
    if saved_names != [group.names for group in groups]:
        differ = sorted({n for names in saved_names for n in names} ^ set(index))[:5]
        raise CheckpointError(
            state_path,
            f"optimizer.param_groups do not match this model's trainable parameters (e.g. {differ}); "
            "were different parts frozen?",
        )
    state: dict[int, dict] = {}
    for key, value in read_tensors(path).items():
        name, _, item = key.rpartition("/")
        if name not in index:
            raise CheckpointError(path, f"'{key}': this model has no trainable parameter '{name}'")
        shape = tuple(params[name].shape)
        if value.ndim and tuple(value.shape) != shape:
            raise CheckpointError(path, f"'{key}' has shape {tuple(value.shape)}, the parameter {shape}")
        state.setdefault(index[name], {})[item] = value
    for name, values in field(plain, "scalars", state_path).items():
        if name not in index:
            raise CheckpointError(state_path, f"optimizer.scalars: no trainable parameter '{name}'")
        state.setdefault(index[name], {}).update(values)
    param_groups = [
        {k: tuple(v) if k in TUPLE_HYPERPARAMETERS else v for k, v in group.items()}
        | {"params": [index[n] for n in group["params"]]}
        for group in saved_groups
    ]
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def write_train_config(directory: Path, config) -> None:
    write_json_atomic(directory / TRAIN_CONFIG, dataclasses.asdict(config))


def write_optimizer(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, directory / OPTIMIZER_FILE, metadata={"format": str(FORMAT_VERSION)})


def write_rng(directory: Path, rank: int, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, directory / RNG_FILE.format(rank=rank))


def read_rng(directory: Path, rank: int) -> dict[str, torch.Tensor]:
    return read_tensors(directory / RNG_FILE.format(rank=rank))
