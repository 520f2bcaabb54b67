"""The training loop: AdamW, warmup + cosine, gradient accumulation and clipping, bf16 autocast on CUDA,
several processes through ``accelerate``, validation, TensorBoard, checkpoints and exact resume.

The model is anything with the VLA interface (``vla.model.vla.VLA`` by default)::

    Model(config: ModelConfig, stats) ; Model.load(directory) ; model.save(directory)
    model.loss(batch) -> {"loss": scalar with grad, "token_accuracy": scalar, "l1": scalar, ...}

Every scalar the loss returns is averaged and logged under train/ and val/; ``loss`` is the one minimized.

``hooks`` run on the main process after every optimizer step: ``hook(step, model)`` returns TensorBoard
scalars (full tags) to log at that step, or None. The closed-loop evaluation of ``vla-train`` is one; it lives
in ``policies/`` because vla/ never imports the simulator.

Launch several GPUs with ``accelerate launch --multi_gpu --num_processes N -m policies.apps.train ...``: each
process reads its own slice of every global batch (``sampler.py``); gradients are averaged by DDP.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from vla.data.meta import load_meta
from vla.model.efficientnet import NAME as LITE0
from vla.model.precision import cpu_has_native_bf16
from vla.train import data
from vla.train.card import TrainingCard
from vla.train.config import TrainConfig
from vla.train.features import attach_trunk_maps
from vla.train.report import Meter, RunLog
from vla.train.resume import check_resumable, dataset_fingerprint, find_resume
from vla.train.rng import seed_everything
from vla.train.sampler import ResumableBatchSampler, fixed_batches
from vla.train.schedule import ParamGroup, lr_factor, param_groups
from vla.train.state import restore_training, save_checkpoint

StepHook = Callable[[int, nn.Module], "dict[str, float] | None"]  # (step, model) -> scalars by tag, or None


class LossModule(nn.Module):
    """Routes ``forward`` to ``model.loss``: DDP synchronizes gradients only for calls through forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> dict:
        return self.model.loss(batch)


@dataclass
class TrainResult:
    step: int  # the last optimizer step done
    checkpoint: Path | None  # the newest checkpoint of the run
    train: dict[str, float] = field(default_factory=dict)  # the last logged training metrics
    val: dict[str, float] = field(default_factory=dict)  # the last validation metrics
    hooks: dict[str, float] = field(default_factory=dict)  # the last scalars each hook returned, by tag


def default_model_class():
    from vla.model.vla import VLA  # imported here: a test may train a stand-in without the LLM stack

    return VLA


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether training autocasts to bf16. ``bf16`` on a CPU without native bf16 (AVX512-BF16 or AMX) trains
    in fp32 instead, with a warning: emulated bf16 there is slower than fp32, so it would only cost time."""
    if precision == "auto":
        return device.type == "cuda"
    if precision != "bf16":
        return False
    if device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "precision=bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); training in fp32", stacklevel=3
        )
        return False
    return True


def autocast(precision: str, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(precision, device))


def train(
    config: TrainConfig, model_class=None, until: int | None = None, hooks: Sequence[StepHook] = ()
) -> TrainResult:
    """Train (or continue, per ``config.resume``) up to ``config.steps`` optimizer steps.

    ``until`` stops after that step as if the run were interrupted there (the schedule still spans
    ``config.steps``); a later call resumes from the last checkpoint. ``hooks``: see the module docstring."""
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(config, model_class or default_model_class(), until, hooks)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)


@torch.no_grad()
def validate(model: nn.Module, loader, config: TrainConfig, accelerator: Accelerator) -> dict[str, float]:
    """Sample-weighted means of the loss metrics over the fixed validation batches of every process."""
    model.eval()
    keys, sums = [], torch.zeros(1, dtype=torch.float64, device=accelerator.device)
    for batch in loader:
        with autocast(config.precision, accelerator.device):
            out = model.loss(data.to_device(batch, accelerator.device))
        if not keys:  # the same model on every process: the same keys, in the same order
            keys = list(out)
            sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=accelerator.device)
        count = len(batch["instruction"])
        sums += torch.tensor([float(out[k]) * count for k in keys] + [count], device=sums.device)
    model.train()
    sums = accelerator.reduce(sums, reduction="sum")
    return {key: float(sums[i] / sums[-1]) for i, key in enumerate(keys)}


def make_accelerator() -> Accelerator:
    # cpu=True on a machine without CUDA: accelerate only sets up multi-process CPU training (gloo) when
    # asked to, and would otherwise run each torchrun process alone, all writing the same run directory.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise RuntimeError(
            f"launched as {launched} processes (WORLD_SIZE) but accelerate runs {accelerator.num_processes}"
        )
    return accelerator


@dataclass
class Run:
    """Everything one training run holds, set up by ``_setup``."""

    config: TrainConfig  # model section fitted to the dataset
    accelerator: Accelerator
    model: nn.Module  # the VLA itself (saved, validated)
    wrapped: nn.Module  # LossModule(model), prepared (DDP across processes)
    optimizer: torch.optim.Optimizer
    groups: list[ParamGroup]
    params: dict[str, nn.Parameter]
    sampler: ResumableBatchSampler
    loader: DataLoader
    val_loader: DataLoader | None
    step: int  # optimizer steps done
    resumed_from: Path | None
    dataset: dict  # the training data's fingerprint, which every checkpoint records
    card: TrainingCard  # what every checkpoint's README.md says


def _setup(config: TrainConfig, model_class) -> Run:
    accelerator = make_accelerator()
    seed_everything(config.seed, config.deterministic)
    meta = load_meta(config.dataset)
    config = replace(config, model=data.fit_model_config(config.model, meta))
    fingerprint = dataset_fingerprint(meta)
    resume = find_resume(config)
    saved_state = None
    if resume is not None:
        saved_state = check_resumable(resume, config, meta, fingerprint, accelerator.num_processes)
    train_set, val_set = data.make_datasets(
        meta.root,  # config.dataset resolved (a Hub id: its cache folder)
        config.model,
        meta,
        config.val_fraction,
        config.cache,
        config.early_frames,
        config.early_repeat,
        config.switch_repeat,
    )
    model = model_class.load(resume) if resume is not None else model_class(config.model, train_set.stats)
    if resume is None and hasattr(model, "fit_instructions"):  # a model that adapts to the instructions
        model.fit_instructions(train_set.meta.tasks)
    if config.model.vision.kind == LITE0:  # a frozen trunk: its maps once per frame, not once per step
        attach_trunk_maps([train_set, val_set], model.vision.backbones[0].trunk)
    model.train()
    groups = param_groups(model, config.weight_decay)
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [params[n] for n in g.names], "weight_decay": g.weight_decay} for g in groups],
        lr=config.lr,
        betas=tuple(config.betas),
        # One fused kernel over all tensors: on the CPU PyTorch otherwise loops over them one by one (3 ms
        # against 14 ms a step for the demo's 6.6M parameters, docs/benchmarks.md).
        fused=accelerator.device.type in ("cpu", "cuda"),
    )
    wrapped, optimizer = accelerator.prepare(LossModule(model), optimizer)
    rank, world = accelerator.process_index, accelerator.num_processes
    sampler = ResumableBatchSampler(len(train_set), config.batch_size, config.seed, rank, world)
    step = 0
    if resume is not None:  # last: restoring the RNG states must follow every draw of the set-up
        step = restore_training(resume, saved_state, optimizer, groups, params, sampler.position, accelerator)
    val_loader = None
    if val_set is not None and config.val_every > 0:
        val_batches = fixed_batches(
            len(val_set), config.batch_size, config.val_batches, config.seed, rank, world
        )
        val_loader = data.make_loader(val_set, val_batches, config.num_workers, config.seed)
    loader = data.make_loader(train_set, sampler, config.num_workers, config.seed)
    card = TrainingCard(
        config,
        fingerprint,
        list(meta.tasks),
        meta.fps,
        tuple(len(part) for part in data.split_episodes(meta.total_episodes, config.val_fraction)),
        accelerator.num_processes,
        _device_name(accelerator.device),
        time.time(),
        step,
    )
    return Run(
        config,
        accelerator,
        model,
        wrapped,
        optimizer,
        groups,
        params,
        sampler,
        loader,
        val_loader,
        step,
        resume,
        fingerprint,
        card,
    )


def _device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def _optimizer_step(run: Run, batches, amp) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
    """One optimizer step over ``grad_accum`` micro-batches: (mean metrics, grad norm before clipping, lr).
    Gradients are synchronized across processes only on the last micro-batch."""
    config, accelerator = run.config, run.accelerator
    lr = config.lr * lr_factor(run.step, config.warmup_steps, config.steps, config.min_lr_ratio)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    sums = {}
    for micro in range(config.grad_accum):
        batch = data.to_device(next(batches), accelerator.device)
        syncing = micro == config.grad_accum - 1
        with contextlib.nullcontext() if syncing else accelerator.no_sync(run.wrapped):
            with amp:
                out = run.wrapped(batch)
            # Each micro-batch weighs the same, as the samples of one big batch would.
            accelerator.backward(out["loss"] / config.grad_accum)
        sums = {k: sums.get(k, 0.0) + value.detach().float() / config.grad_accum for k, value in out.items()}
    trainable = [run.params[name] for group in run.groups for name in group.names]
    grad_norm = accelerator.clip_grad_norm_(trainable, config.grad_clip if config.grad_clip > 0 else math.inf)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return sums, grad_norm, lr


def _run_hooks(hooks: Sequence[StepHook], run: Run, log: RunLog) -> dict[str, float]:
    """Each hook's scalars at this step, logged. The model is handed over in eval mode; the other processes
    wait at the barrier, so a slow hook (a closed-loop evaluation) cannot time out their next all-reduce."""
    logged = {}
    if run.accelerator.is_main_process:
        for hook in hooks:
            run.model.eval()
            try:
                with torch.no_grad():
                    scalars = hook(run.step, run.model)
            finally:
                run.model.train()
            if scalars:
                log.scalars(None, scalars, run.step)
                logged.update(scalars)
    run.accelerator.wait_for_everyone()
    return logged


def _train(config: TrainConfig, model_class, until: int | None, hooks: Sequence[StepHook]) -> TrainResult:
    run = _setup(config, model_class)
    config, accelerator = run.config, run.accelerator
    stop = min(config.steps, until if until is not None else config.steps)
    result = TrainResult(step=run.step, checkpoint=run.resumed_from)
    amp = autocast(config.precision, accelerator.device)
    samples_per_step = config.batch_size * config.grad_accum * accelerator.num_processes
    with RunLog(config, run.step, accelerator.is_main_process) as log:
        batches = data.train_batches(run.loader, run.sampler)
        meter = Meter()
        while run.step < stop:
            meter.start()
            metrics, grad_norm, lr = _optimizer_step(run, batches, amp)
            meter.add(metrics, grad_norm, samples_per_step)
            step = run.step
            if step % config.log_every == 0 or step == stop:
                result.train = meter.flush(accelerator)
                log.scalars("train", {**result.train, "lr": lr}, step)
            if run.val_loader is not None and (step % config.val_every == 0 or step == config.steps):
                result.val = validate(run.model, run.val_loader, config, accelerator)
                log.scalars("val", result.val, step)
            if hooks:
                result.hooks.update(_run_hooks(hooks, run, log))
            if step % config.checkpoint_every == 0 or step == config.steps:
                result.checkpoint = save_checkpoint(
                    config,
                    step,
                    run.model,
                    run.optimizer,
                    run.groups,
                    run.sampler.position,
                    accelerator,
                    run.dataset,
                    run.card,
                )
            log.progress(step, result.train)
    result.step = run.step
    return result
