"""The control loop's per-tick log: what ran when, and its summary, CSV and plot.

Columns of ``timing.csv`` (one row per tick of every episode)::

    episode, tick          which tick of which episode
    time_s                 when it ran, from the episode's first tick
    jitter_ms              how late it ran after its due time (the loop sleeps until the due time)
    kind                   act | hold (robot.stop()); "dry-" in front in a dry run (nothing sent)
    chunk, index           the chunk and the action in it that was proposed (-1 for a watchdog hold)
    latency_ms             inference latency of the chunk that took effect at this tick (empty otherwise)
    dropped                actions of that chunk dropped because their tick had passed
    reasons                the safety layer's interventions, "+"-joined
    a0 .. a6               the action sent (a hold: zero motion, the gripper kept)
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLUMNS = ("episode", "tick", "time_s", "jitter_ms", "kind", "chunk", "index", "latency_ms", "dropped")


@dataclass(frozen=True)
class TickRecord:
    episode: int
    tick: int
    time_s: float
    jitter_ms: float
    kind: str
    chunk: int
    index: int
    latency_ms: float | None
    dropped: int
    reasons: tuple[str, ...]
    action: np.ndarray  # (7,)


def _stats(values: Sequence[float]) -> dict | None:
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "max": float(array.max()),
    }


def summary(records: Sequence[TickRecord]) -> dict:
    """Ticks, holds, dropped actions, interventions and jitter / latency statistics (ms) of ``records``."""
    latencies = [r.latency_ms for r in records if r.latency_ms is not None]
    return {
        "ticks": len(records),
        "holds": sum(r.kind.endswith("hold") for r in records),
        "watchdog_holds": sum(r.kind.endswith("hold") and r.chunk < 0 for r in records),
        "dropped": sum(r.dropped for r in records),
        "chunks": len(latencies),
        "interventions": dict(Counter(reason for r in records for reason in r.reasons)),
        "jitter_ms": _stats([r.jitter_ms for r in records]),
        "latency_ms": _stats(latencies),
    }


def write_csv(records: Sequence[TickRecord], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*COLUMNS, "reasons", *(f"a{i}" for i in range(7))])
        for r in records:
            latency = "" if r.latency_ms is None else f"{r.latency_ms:.3f}"
            writer.writerow(
                [r.episode, r.tick, f"{r.time_s:.4f}", f"{r.jitter_ms:.3f}", r.kind, r.chunk, r.index]
                + [latency, r.dropped, "+".join(r.reasons), *(f"{v:.6g}" for v in r.action)]
            )
    return path


def plot(records: Sequence[TickRecord], path: str | Path, rate_hz: float) -> Path:
    """Three panels over all ticks: jitter, inference latency, and cumulative holds / drops / interventions."""
    # Here, not at the top: a loop that only logs never pays for matplotlib. policies.reports.plots selects
    # the file-only backend before pyplot loads (no display on a robot's computer either).
    from policies.reports.plots import plt, save_figure

    period_ms = 1000.0 / rate_hz
    x = np.arange(len(records))
    figure, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    axes[0].plot(x, [r.jitter_ms for r in records], lw=0.8)
    axes[0].axhline(period_ms, color="tab:red", lw=0.8, ls="--", label="one period")
    axes[0].set_ylabel("tick jitter (ms)")
    axes[0].legend(loc="upper right", fontsize=8)
    chunks = [(i, r.latency_ms) for i, r in zip(x, records, strict=True) if r.latency_ms is not None]
    if chunks:
        axes[1].plot(*zip(*chunks, strict=True), marker=".", lw=0.8)
    axes[1].axhline(period_ms, color="tab:red", lw=0.8, ls="--")
    axes[1].set_ylabel("inference latency (ms)")
    for label, values in (
        ("holds", [r.kind.endswith("hold") for r in records]),
        ("dropped actions", [r.dropped for r in records]),
        ("interventions", [len(r.reasons) for r in records]),
    ):
        axes[2].plot(x, np.cumsum(values), label=label, lw=1)
    axes[2].set_ylabel("cumulative count")
    axes[2].set_xlabel("tick (all episodes)")
    axes[2].legend(loc="upper left", fontsize=8)
    for start in [i for i, r in enumerate(records) if r.tick == 0 and i > 0]:
        for axis in axes:
            axis.axvline(start, color="grey", lw=0.5, alpha=0.5)
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle(f"control loop at {rate_hz:g} Hz: {len(records)} ticks", fontsize=10)
    return save_figure(figure, path)
