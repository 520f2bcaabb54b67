"""The trainer's state into and out of checkpoints (layout and primitives in ``checkpoint.py``).

What makes a resume exact: the weights (safetensors, bit for bit), the optimizer state (every tensor, every
hyper-parameter), the step (the learning rate is a pure function of it), the sampler position (epoch and
samples consumed; the epoch order is a pure function of seed and epoch) and the RNG states of every
process (torch, CUDA, numpy, Python), captured after the step's validation and restored last.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from vla.train import checkpoint as ckpt
from vla.train.card import TrainingCard, write_card
from vla.train.config import TrainConfig
from vla.train.rng import capture_rng, restore_rng
from vla.train.sampler import Position
from vla.train.schedule import ParamGroup


def save_checkpoint(
    config: TrainConfig,
    step: int,
    model,
    optimizer: torch.optim.Optimizer,
    groups: list[ParamGroup],
    position: Position,
    accelerator: Accelerator,
    dataset: dict,
    card: TrainingCard | None = None,
) -> Path:
    """Write ``<out>/checkpoints/<step>/`` and point ``last`` at it. Every process must call this.
    ``dataset``: the fingerprint of the training data (``resume.dataset_fingerprint``), which a resume
    checks; ``card``: the model card written beside the weights (``README.md``)."""
    staging = ckpt.staging_dir(config.out, step)
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    rng_tensors, rng_plain = capture_rng()
    ckpt.write_rng(staging, accelerator.process_index, rng_tensors)
    rng_all = gather_object([rng_plain])  # one entry per process, in rank order
    if accelerator.is_main_process:
        model.save(staging)
        ckpt.write_train_config(staging, config)
        tensors, optimizer_plain = ckpt.optimizer_state(optimizer, groups)
        ckpt.write_optimizer(staging, tensors)
        trainer_state = {
            "format": ckpt.FORMAT_VERSION,
            "step": step,
            "position": dataclasses.asdict(position),
            "num_processes": accelerator.num_processes,
            "dataset": dataset,
            "scheduler": {
                "kind": "linear warmup + cosine (vla.train.schedule.lr_factor)",
                "step": step,
                "last_lr": [group["lr"] for group in optimizer.param_groups],
            },
            "optimizer": optimizer_plain,
            "rng": rng_all,
        }
        ckpt.write_json_atomic(staging / ckpt.TRAINER_STATE, trainer_state)
        if card is not None:
            write_card(staging, card.markdown(step))
    accelerator.wait_for_everyone()
    final = Path(config.out) / ckpt.CHECKPOINTS / ckpt.checkpoint_name(step)
    if accelerator.is_main_process:
        final = ckpt.publish(config.out, step)
        ckpt.prune(config.out, config.keep_last)
    accelerator.wait_for_everyone()
    return final


def restore_training(
    directory: Path,
    state: dict,
    optimizer: torch.optim.Optimizer,
    groups: list[ParamGroup],
    params: dict[str, torch.nn.Parameter],
    position: Position,
    accelerator: Accelerator,
) -> int:
    """Load the optimizer, sampler position and RNG states; return the step to continue from.
    Call it last before training: restoring the RNG states must be the final draw-free act."""
    state_path = directory / ckpt.TRAINER_STATE
    ckpt.load_optimizer_state(optimizer, groups, params, directory, state["optimizer"])
    saved_position = state["position"]
    position.epoch = int(ckpt.field(saved_position, "epoch", state_path))
    position.sample = int(ckpt.field(saved_position, "sample", state_path))
    rank = accelerator.process_index
    if rank >= len(state["rng"]):
        raise ckpt.CheckpointError(
            state_path,
            f"rng has states for {len(state['rng'])} processes; this run has {accelerator.num_processes} "
            "(resume with the same number of processes)",
        )
    restore_rng(ckpt.read_rng(directory, rank), state["rng"][rank])
    return int(state["step"])
