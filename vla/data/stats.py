"""Feature statistics for stats.json and the per-episode ``stats/<feature>/<stat>`` columns.

Every statistic is exact over the rows it describes. Dataset statistics are those of all rows of all
episodes (quantiles of a union are not the average of per-episode quantiles): ``RunningStats`` keeps every
column's values sorted so that adding an episode stays cheap. Image statistics come from exact per-channel
pixel-value histograms, which add up across episodes without loss.

Quantiles follow numpy's default (linear interpolation between order statistics). Image statistics are on the
0-1 scale with shape (3, 1, 1), as LeRobot stores them; ``count`` is a (1,) int64 array: rows for vectors,
frames for images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla.data.layout import QUANTILES


def pixel_histogram(frames: np.ndarray) -> np.ndarray:
    """(3, 256) int64 counts of each value per RGB channel over all frames (T, H, W, 3)."""
    return np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.int64)


def check_finite(values: np.ndarray, feature: str, unit: str = "row") -> None:
    """NaN or inf is a ValueError naming the feature and the first bad row (``unit``: "row" or "frame")."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, *column = (int(i) for i in np.argwhere(bad)[0])
        where = f"{unit} {row}" + (f", column {column[0]}" if column else "")
        raise ValueError(f"feature '{feature}' has a non-finite value ({values[(row, *column)]}) at {where}")


def _rows(values, feature: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"feature '{feature}': expected (N, D) values, got shape {values.shape}")
    check_finite(values, feature)
    return values


@dataclass(frozen=True)
class RunningStats:
    """Exact statistics of all rows so far, extended episode by episode without revisiting old rows' maths.

    Quantiles, min and max come from each column's sorted values (merging an episode in is one O(N) copy,
    against O(N log N) for a fresh quantile); mean and std from Chan et al.'s pairwise update, which equals
    the two-pass result up to float64 rounding.
    """

    sorted: np.ndarray  # (D, N): each feature dimension's values in ascending order, in the input dtype
    mean: np.ndarray  # (D,) float64
    m2: np.ndarray  # (D,) float64: sum of squared deviations from the mean

    @property
    def count(self) -> int:
        return self.sorted.shape[1]

    @classmethod
    def of(cls, values, feature: str = "values") -> RunningStats:
        """Statistics of ``values`` (N, D) (or (N,)); NaN or inf is a ValueError naming feature and row."""
        values = _rows(values, feature)
        wide = values.astype(np.float64)
        mean = wide.mean(axis=0) if len(wide) else np.zeros(wide.shape[1])
        return cls(np.sort(values.T, axis=1), mean, ((wide - mean) ** 2).sum(axis=0))

    def merged(self, other: RunningStats) -> RunningStats:
        """Statistics of the rows of ``self`` and ``other`` together (neither is changed)."""
        n, m = self.count, other.count
        if n == 0 or m == 0:
            return other if n == 0 else self
        delta = other.mean - self.mean
        mean = self.mean + delta * (m / (n + m))
        m2 = self.m2 + other.m2 + delta**2 * (n * m / (n + m))
        merged = np.stack(
            [
                np.insert(a, np.searchsorted(a, b, side="right"), b)
                for a, b in zip(self.sorted, other.sorted, strict=True)
            ]
        )
        return RunningStats(merged, mean, m2)

    def stats(self) -> dict[str, np.ndarray]:
        """min, max, mean, std, q01..q99 (each (D,) float32) and count ((1,) int64)."""
        n = self.count
        if n == 0:
            raise ValueError("no rows: statistics of an empty feature are undefined")
        ordered = self.sorted.astype(np.float64)
        out = {"min": ordered[:, 0], "max": ordered[:, -1], "mean": self.mean, "std": np.sqrt(self.m2 / n)}
        for name, q in QUANTILES.items():
            # numpy's default "linear" quantile: interpolate between the order statistics around q (n - 1).
            position = q * (n - 1)
            below = int(np.floor(position))
            above = min(below + 1, n - 1)
            low, high = ordered[:, below], ordered[:, above]
            out[name] = low + (high - low) * (position - below)
        stats = {name: value.astype(np.float32) for name, value in out.items()}
        stats["count"] = np.array([n], dtype=np.int64)
        return stats


def feature_stats(values, feature: str = "values") -> dict[str, np.ndarray]:
    """Statistics of ``values`` (N, D) over all N > 0 rows: each (D,) float32, count (1,) int64."""
    return RunningStats.of(values, feature).stats()


def _histogram_quantile(hist: np.ndarray, q: float) -> float:
    """np.quantile (linear) of the multiset whose value v occurs hist[v] times."""
    cumulative = np.cumsum(hist)
    position = q * (cumulative[-1] - 1)
    below, above = int(np.floor(position)), int(np.ceil(position))
    # The k-th smallest value (0-based) is the first v whose cumulative count exceeds k.
    low = np.searchsorted(cumulative, below, side="right")
    high = np.searchsorted(cumulative, above, side="right")
    return float(low + (high - low) * (position - below))


def image_stats_from_histogram(hist: np.ndarray, count_frames: int) -> dict[str, np.ndarray]:
    """Per-channel statistics (3, 1, 1) on the 0-1 scale from pixel counts ``hist`` (3, 256)."""
    hist = np.asarray(hist, dtype=np.int64)
    if hist.shape != (3, 256) or (hist < 0).any() or (hist.sum(axis=1) == 0).any():
        raise ValueError(
            f"expected (3, 256) non-negative pixel counts with pixels in each channel, got {hist.shape}"
        )
    levels = np.arange(256, dtype=np.float64)
    total = hist.sum(axis=1).astype(np.float64)  # (3,)
    mean = (hist * levels).sum(axis=1) / total
    var = (hist * (levels - mean[:, None]) ** 2).sum(axis=1) / total
    present = hist > 0
    stats = {
        "min": np.array([levels[row].min() for row in present]),
        "max": np.array([levels[row].max() for row in present]),
        "mean": mean,
        "std": np.sqrt(var),
    }
    for name, q in QUANTILES.items():
        stats[name] = np.array([_histogram_quantile(channel, q) for channel in hist])
    out = {name: (value / 255.0).reshape(3, 1, 1).astype(np.float32) for name, value in stats.items()}
    out["count"] = np.array([count_frames], dtype=np.int64)
    return out


def dataset_stats(
    columns: dict[str, RunningStats], histograms: dict[str, np.ndarray], frames: int
) -> dict[str, dict[str, np.ndarray]]:
    """stats.json content: ``columns`` {feature: stats of all rows}, ``histograms`` {video key: summed (3, 256)}."""
    stats = {feature: running.stats() for feature, running in columns.items()}
    for key, hist in histograms.items():
        stats[key] = image_stats_from_histogram(hist, frames)
    return stats


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {
        feature: {name: value.tolist() for name, value in values.items()} for feature, values in stats.items()
    }
