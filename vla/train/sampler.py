"""A batch sampler whose position is two integers, so that a resumed run reads exactly the batches the
interrupted one would have read next.

Epoch e visits the samples in ``permutation(seed, e)`` order. Position = (epoch, samples of that epoch already
consumed by all processes together). Each global batch of ``batch_size * num_processes`` consecutive samples
of the permutation is cut into one slice per process (process r takes the r-th slice); an incomplete last
global batch is dropped, so every process always gets a full batch. The position is kept in samples, not
batches, so a resume with another batch size or process count still continues where the run stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler


def epoch_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """(num_samples,) int64: the visiting order of an epoch, a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


@dataclass
class Position:
    epoch: int = 0
    sample: int = 0  # samples of this epoch consumed, by all processes together


class ResumableBatchSampler(Sampler[list[int]]):
    """Yields this process's index lists from ``position`` on; ``position`` is read when iteration starts
    (a DataLoader calls ``iter`` once per pass), so set it before iterating the loader again."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, num_processes: int = 1):
        if num_samples < batch_size * num_processes:
            raise ValueError(
                f"{num_samples} training samples are fewer than one global batch "
                f"(batch_size {batch_size} x {num_processes} processes)"
            )
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.num_processes = rank, num_processes
        self.position = Position()

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_processes

    def __len__(self) -> int:
        return (self.num_samples - self.position.sample) // self.global_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.num_samples, self.seed, self.position.epoch)
        start = self.position.sample
        for first in range(start, self.num_samples - self.global_batch + 1, self.global_batch):
            mine = first + self.rank * self.batch_size
            yield order[mine : mine + self.batch_size].tolist()


def fixed_batches(num_samples: int, batch_size: int, max_batches: int, seed: int, rank: int, world: int):
    """Index lists of a fixed validation subset: the same samples at every validation (so curves compare),
    spread over the whole split by a seeded permutation; ``max_batches`` 0 takes all of it. Incomplete
    batches are kept: validation has no batch-size constraint."""
    order = epoch_order(num_samples, seed, -1 % 2**32)
    step = batch_size * world
    count = num_samples if max_batches == 0 else min(num_samples, max_batches * step)
    batches = []
    for first in range(0, count, step):
        mine = order[first : min(first + step, count)][rank * batch_size : (rank + 1) * batch_size]
        if len(mine):
            batches.append(mine.tolist())
    return batches
