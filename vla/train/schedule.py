"""The learning-rate schedule and the AdamW parameter groups: pure functions of the step and the model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

NO_DECAY_NAME_PARTS = ("embed", "norm", "bias")  # camera/position embeddings are bare Parameters


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based): linear warmup to 1 over
    ``warmup_steps`` steps ((step + 1) / warmup, so the first step already learns), then a cosine from 1
    down to ``min_ratio`` at the last step, ``total_steps - 1``; past the end it stays at ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - 1 - warmup_steps
    if decay_steps <= 0:
        return 1.0 if step < total_steps else min_ratio
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class ParamGroup:
    names: list[str]  # the model's parameter names, in optimizer order
    weight_decay: float


def _no_decay_names(model: nn.Module) -> set[str]:
    """Parameters weight decay would only hurt: norm scales, biases, embeddings (1-D or named so)."""
    names = set()
    for module_name, module in model.named_modules():
        is_leaf = next(module.children(), None) is None
        is_norm = is_leaf and (
            type(module).__name__.endswith("Norm")  # LlamaRMSNorm and kin
            or isinstance(module, nn.LayerNorm | nn.GroupNorm | nn.modules.batchnorm._BatchNorm)
        )
        if is_norm or isinstance(module, nn.Embedding):
            names.update(f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters())
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1].lower()
        if param.ndim < 2 or any(part in leaf for part in NO_DECAY_NAME_PARTS):
            names.add(name)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[ParamGroup]:
    """Two AdamW groups (decay, no decay) of the trainable parameters only: a frozen parameter
    (``requires_grad`` False: frozen vision, frozen LLM, the base weights under LoRA) never reaches the
    optimizer, so it carries no optimizer state either."""
    no_decay = _no_decay_names(model)
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (everything is frozen)")
    groups = [
        ParamGroup([n for n in trainable if n not in no_decay], weight_decay),
        ParamGroup([n for n in trainable if n in no_decay], 0.0),
    ]
    return [group for group in groups if group.names]
