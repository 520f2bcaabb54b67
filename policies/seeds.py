"""Which episode seeds are for what. Numbers that are reported must come from seeds no choice was tuned on.

    recording  [0, 100000)         vla-record: a task's k-th attempt uses seed k (from its ``seed`` option)
    tune       [100000, 200000)    choosing recipes and checkpoints: vla-train's periodic closed-loop
                                   evaluation, ``vla-eval split=tune``, experiments while tuning
    heldout    [200000, 300000)    the numbers that are reported: ``vla-eval`` and ``vla-demo`` by default

Each task draws its own random stream from a seed (``sim.env``), so the same seed on two tasks gives two
independent episodes. Episode i of a task uses seed ``start + i``. A results file names its split.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SeedRange(NamedTuple):
    name: str
    start: int  # the first seed
    stop: int  # one past the last


RECORDING = SeedRange("recording", 0, 100_000)
TUNE = SeedRange("tune", 100_000, 200_000)
HELDOUT = SeedRange("heldout", 200_000, 300_000)
SPLITS = {split.name: split for split in (TUNE, HELDOUT)}  # the evaluation splits
Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def split_named(name: str) -> SeedRange:
    if name not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {name!r}")
    return SPLITS[name]


def episode_seeds(split: str, episodes: int, start: int | None = None) -> list[int]:
    """The seeds of ``episodes`` episodes of ``split``, from ``start`` (default: the split's first seed).
    Every seed must lie inside the split, so a tuning run can never spill into the held-out range."""
    seeds = split_named(split)
    first = seeds.start if start is None else int(start)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not (seeds.start <= first and first + episodes <= seeds.stop):
        raise ValueError(
            f"seeds {first}..{first + episodes - 1} leave the {seeds.name} split "
            f"[{seeds.start}, {seeds.stop - 1}]; choose a seed inside it or another split"
        )
    return list(range(first, first + episodes))


def wilson_interval(successes: int, episodes: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% by default). Unlike the normal approximation it
    stays inside [0, 1] and is not empty at 0/n or n/n, where small evaluations often land."""
    if episodes < 1 or not 0 <= successes <= episodes:
        raise ValueError(f"need 0 <= successes <= episodes and episodes >= 1, got {successes}/{episodes}")
    p = successes / episodes
    denominator = 1 + z**2 / episodes
    centre = (p + z**2 / (2 * episodes)) / denominator
    half = z * np.sqrt(p * (1 - p) / episodes + z**2 / (4 * episodes**2)) / denominator
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def rate_with_interval(rate: float, interval) -> str:
    """``91% [84-95]``: a success rate with its 95% interval, as every table of ours prints it."""
    return f"{rate:.0%} [{interval[0]:.0%}-{interval[1]:.0%}]"
