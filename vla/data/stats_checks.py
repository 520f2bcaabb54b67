"""The statistics half of ``vla-dataset validate``: every value of meta/stats.json and of each episode's
``stats/<feature>/<stat>`` columns, checked against the data it describes.

- Numeric features (state, action and the bookkeeping columns): count, min, max, mean and std recomputed
  from the data parquet as the writer computes them (``RunningStats``) must match within ``RTOL``/``ATOL``
  (the files hold float32). So must the quantiles of a dataset vla-stack wrote (exact over the rows); another
  writer's quantiles need not be the rows' (LeRobot's aggregates per-episode ones, approximate), so they are
  only checked to be ordered and within [min, max].
- Images: of a dataset vla-stack wrote, every statistic must be the one of the raw frames' pixel histograms
  it recorded per episode (``vla/pixel_histogram/<key>``), and each histogram must count every pixel of
  every frame of its episode (frames x H x W). Nothing is decoded: the videos' pixels are the codec's, not
  the statistics'. Of another writer's dataset (statistics from sampled frames), only the form: on the 0-1
  scale, ordered quantiles, min <= mean <= max, 0 <= std <= 0.5.

"A dataset vla-stack wrote" is one whose meta/episodes holds the pixel histogram columns.
"""

from __future__ import annotations

import itertools

import numpy as np

from vla.data.committed import episode_histograms, numeric_features
from vla.data.layout import (
    ACTION,
    EPISODE_INDEX,
    FRAME_INDEX,
    INDEX,
    QUANTILES,
    STAT_NAMES,
    STATE,
    STATS_PATH,
    TASK_INDEX,
    TIMESTAMP,
    DatasetError,
)
from vla.data.meta import DatasetMeta, episode_files, read_parquet
from vla.data.stats import RunningStats, image_stats_from_histogram
from vla.data.table import FrameTable

RTOL, ATOL = 1e-4, 1e-6  # float32 storage of values recomputed in float64
ORDERED = ("min", *QUANTILES, "max")  # each <= the next


def numeric_columns(meta: DatasetMeta, table: FrameTable) -> dict[str, np.ndarray]:
    """Every numeric feature's rows, (N,) or (N, D), from the loaded data parquet."""
    columns = {
        STATE: table.state,
        ACTION: table.action,
        TIMESTAMP: table.timestamp,
        FRAME_INDEX: table.frame_index,
        EPISODE_INDEX: table.episode_index,
        INDEX: np.arange(len(table.state)),
        TASK_INDEX: table.task_index,
    }
    return {name: columns[name] for name in numeric_features(meta.features) if name in columns}


def check_stats(meta: DatasetMeta, table: FrameTable) -> list[str]:
    """The problems of meta/stats.json and the per-episode statistics, each naming the feature and stat."""
    try:
        histograms = episode_histograms(meta)  # {key: (E, 3, 256)}
    except DatasetError:
        histograms = None  # not written by vla-stack: no raw-frame histograms to check images against
    ours = histograms is not None
    columns = numeric_columns(meta, table)
    problems = []
    expected = {name: RunningStats.of(values, name).stats() for name, values in columns.items()}
    if ours:
        frames = meta.total_frames
        expected |= {key: image_stats_from_histogram(h.sum(axis=0), frames) for key, h in histograms.items()}
        problems += _pixel_totals(meta, histograms)
    for feature in [*columns, *meta.camera_keys]:
        where = f"{STATS_PATH}: '{feature}'"
        problems += _compare(where, meta.stats.get(feature), expected.get(feature), feature, meta, ours)
    for episode, stored in _episode_stats(meta):
        rows = slice(table.episode_starts[episode], table.episode_starts[episode + 1])
        wanted = {name: RunningStats.of(values[rows], name).stats() for name, values in columns.items()}
        if ours:
            length = rows.stop - rows.start
            wanted |= {key: image_stats_from_histogram(h[episode], length) for key, h in histograms.items()}
        for feature in [*columns, *meta.camera_keys]:
            where = f"meta/episodes: episode {episode} 'stats/{feature}'"
            problems += _compare(where, stored.get(feature), wanted.get(feature), feature, meta, ours)
    return problems


def _compare(where: str, stored: dict | None, expected: dict | None, feature: str, meta, ours: bool):
    """Problems of one feature's ``stored`` statistics against ``expected`` (None: check the form only)."""
    if not stored:
        return [f"{where} has no statistics"]
    missing = [name for name in STAT_NAMES if name not in stored]
    if missing:
        return [f"{where} lacks {missing}"]
    image = feature in meta.camera_keys
    shape = (3, 1, 1) if image else tuple(meta.features[feature]["shape"])
    problems = [
        f"{where} '{name}' has shape {np.shape(stored[name])}, expected {shape}"
        for name in STAT_NAMES
        if name != "count" and np.shape(stored[name]) != shape
    ]
    if problems:
        return problems
    values = {name: np.asarray(stored[name], dtype=np.float64) for name in STAT_NAMES}
    if not all(np.isfinite(v).all() for v in values.values()):
        return [f"{where} has a non-finite statistic"]
    exact = [] if expected is None else ["count", "min", "max", "mean", "std"]
    exact += list(QUANTILES) if expected is not None and ours else []
    for name in exact:
        if not np.allclose(values[name], expected[name], rtol=RTOL, atol=ATOL):
            worst = np.abs(values[name] - expected[name]).ravel().argmax()
            problems.append(
                f"{where} '{name}' is {values[name].ravel()[worst]:.6g}, the data's is "
                f"{np.asarray(expected[name], np.float64).ravel()[worst]:.6g} (element {worst})"
            )
    return problems + _form(where, values, image)


def _form(where: str, values: dict[str, np.ndarray], image: bool) -> list[str]:
    """Problems of the statistics' form: ordered quantiles, the mean inside [min, max], a possible std."""
    problems = [
        f"{where} '{low}' > '{high}'"
        for low, high in itertools.pairwise(ORDERED)
        if (values[low] > values[high] + ATOL).any()
    ]
    if ((values["mean"] < values["min"] - ATOL) | (values["mean"] > values["max"] + ATOL)).any():
        problems.append(f"{where} 'mean' is outside [min, max]")
    top = 0.5 if image else np.inf  # the largest std of values on the 0-1 scale
    if ((values["std"] < 0) | (values["std"] > top)).any():
        problems.append(f"{where} 'std' is negative" + (" or above 0.5" if image else ""))
    if image and ((values["min"] < 0) | (values["max"] > 1)).any():
        problems.append(f"{where} is not on the 0-1 scale")
    return problems


def _pixel_totals(meta: DatasetMeta, histograms: dict[str, np.ndarray]) -> list[str]:
    """Each episode's histogram must count every pixel of its frames, in each channel."""
    lengths = np.array([row["length"] for row in meta.episodes])
    problems = []
    for key, counts in histograms.items():
        height, width = meta.features[key]["shape"][:2]
        totals = counts.sum(axis=2)  # (E, 3)
        bad = np.flatnonzero((totals != (lengths * height * width)[:, None]).any(axis=1))
        if len(bad):
            episode = int(bad[0])
            problems.append(
                f"meta/episodes: episode {episode} 'vla/pixel_histogram/{key}' counts {totals[episode].tolist()}"
                f" pixels per channel, its {lengths[episode]} frames of {height}x{width} hold "
                f"{lengths[episode] * height * width}"
            )
    return problems


def _episode_stats(meta: DatasetMeta):
    """(episode index, {feature: {stat: array}}) of each committed episode's ``stats/`` columns."""
    for path in episode_files(meta.root):
        table = read_parquet(path)
        names = [name for name in table.column_names if name.startswith("stats/")]
        for row in table.select(["episode_index", *names]).to_pylist():
            if row["episode_index"] >= meta.total_episodes or not names:
                continue  # an interrupted commit's row, or a writer that keeps no per-episode statistics
            stats: dict[str, dict] = {}
            for name in names:
                feature, _, stat = name.removeprefix("stats/").rpartition("/")
                stats.setdefault(feature, {})[stat] = np.asarray(row[name])
            yield row["episode_index"], stats
