"""Feature statistics for stats.json and the per-episode ``stats/<feature>/<stat>`` columns.

Every statistic is exact over the rows it describes. Dataset statistics are recomputed from all rows of all
episodes (quantiles of a union are not the average of per-episode quantiles), and image statistics come from
exact per-channel pixel-value histograms, which add up across episodes without loss.

Quantiles follow numpy's default (linear interpolation between order statistics). Image statistics are on the
0-1 scale with shape (3, 1, 1), as LeRobot stores them; ``count`` is a (1,) int64 array: rows for vectors,
frames for images.
"""

from __future__ import annotations

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


def feature_stats(values: np.ndarray, feature: str = "values") -> dict[str, np.ndarray]:
    """Statistics of ``values`` (N, D) over all N rows: each (D,) float32, count (1,) int64."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"feature '{feature}': expected (N, D) values with N > 0, got shape {values.shape}")
    check_finite(values, feature)
    wide = values.astype(np.float64)
    stats = {
        "min": wide.min(axis=0),
        "max": wide.max(axis=0),
        "mean": wide.mean(axis=0),
        "std": wide.std(axis=0),
    }
    levels = np.quantile(wide, list(QUANTILES.values()), axis=0)  # (Q, D)
    stats.update(dict(zip(QUANTILES, levels, strict=True)))
    out = {name: value.astype(np.float32) for name, value in stats.items()}
    out["count"] = np.array([values.shape[0]], dtype=np.int64)
    return out


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
    columns: dict[str, np.ndarray], histograms: dict[str, np.ndarray], frames: int
) -> dict[str, dict[str, np.ndarray]]:
    """stats.json content: ``columns`` {feature: (N, D) all rows}, ``histograms`` {video key: summed (3, 256)}."""
    stats = {feature: feature_stats(values, feature) for feature, values in columns.items()}
    for key, hist in histograms.items():
        stats[key] = image_stats_from_histogram(hist, frames)
    return stats


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {
        feature: {name: value.tolist() for name, value in values.items()} for feature, values in stats.items()
    }
