"""Figures for reports people look at, not parse: training curves from a run's TensorBoard logs, and
``save_figure`` for every PNG the stack writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a headless machine
import matplotlib.pyplot as plt


def read_scalars(log_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """{tag: (steps, values)} of every scalar under ``log_dir`` (all event files, in step order)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # only when read

    scalars: dict[str, dict[int, float]] = {}
    for events in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                scalars.setdefault(tag, {})[event.step] = event.value
    return {tag: (sorted(points), [points[s] for s in sorted(points)]) for tag, points in scalars.items()}


def plot_training_curves(log_dir: str | Path, path: str | Path, tags: list[str] | None = None) -> Path:
    """One panel per scalar tag (default: all), written to ``path``; raises if the logs hold no scalars."""
    scalars = read_scalars(log_dir)
    chosen = [t for t in (tags or sorted(scalars)) if t in scalars]
    if not chosen:
        raise ValueError(f"no scalars to plot under {log_dir} (looked for {tags or 'any'})")
    columns = min(3, len(chosen))
    rows = -(-len(chosen) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3 * rows), squeeze=False)
    for axis, tag in zip(axes.flat, chosen, strict=False):
        steps, values = scalars[tag]
        axis.plot(steps, values, marker="." if len(steps) < 30 else None)
        axis.set_title(tag, fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(chosen) :]:
        axis.set_visible(False)
    return save_figure(figure, path)


def save_figure(figure, path: str | Path) -> Path:
    """Lay ``figure`` out, write it to ``path`` as a PNG (folders made) and free it."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
