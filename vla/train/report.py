"""What a run reports: TensorBoard scalars under ``<out>/tensorboard`` and a progress bar (main process)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

TENSORBOARD = "tensorboard"


class Meter:
    """Training metrics averaged over the steps since the last flush; values stay on the device until
    then, so logging does not synchronize the GPU every step. Time counts only the training steps
    (not validation or checkpointing), so samples/s is the training throughput."""

    def __init__(self):
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0
        self._samples = 0
        self._seconds = 0.0
        self._started = time.perf_counter()

    def start(self) -> None:
        self._started = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor], grad_norm: torch.Tensor, samples: int) -> None:
        for key, value in {**metrics, "grad_norm": grad_norm.detach().float()}.items():
            self._sums[key] = self._sums.get(key, 0) + value
        self._steps += 1
        self._samples += samples
        self._seconds += time.perf_counter() - self._started

    def flush(self, accelerator: Accelerator) -> dict[str, float]:
        """The averages since the last flush, over all processes; then start again."""
        keys = sorted(self._sums)
        means = torch.stack([self._sums[k].reshape(()) for k in keys]) / max(self._steps, 1)
        means = accelerator.reduce(means.to(accelerator.device), reduction="mean")
        result = {k: float(v) for k, v in zip(keys, means.tolist(), strict=True)}
        result["samples_per_s"] = self._samples / self._seconds if self._seconds > 0 else 0.0
        self.__init__()
        return result


class RunLog:
    """TensorBoard writer and tqdm bar of the main process; on the other processes every call is a no-op.
    A resumed run drops the events the interrupted run logged past the checkpoint (``purge_step``)."""

    def __init__(self, config, start_step: int, main: bool):
        self._writer = None
        self._bar = None
        if main:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only where needed

            self._writer = SummaryWriter(
                str(Path(config.out) / TENSORBOARD), purge_step=start_step if start_step else None
            )
            self._bar = tqdm(total=config.steps, initial=start_step, unit="step", desc="training")

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._bar is not None:
            self._bar.close()

    def scalars(self, prefix: str | None, values: dict[str, float], step: int) -> None:
        """Log ``values`` as ``<prefix>/<key>``, or under their keys as tags when ``prefix`` is None."""
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key if prefix is None else f"{prefix}/{key}", value, step)

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if metrics:
                self._bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
