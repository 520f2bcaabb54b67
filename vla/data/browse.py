"""``vla-dataset view DIR --html OUT``: static pages to browse the episodes of a dataset or of a vla-eval run.

    OUT/index.html           the episode list: task, instruction, length, seed and success where known, with
                             a filter box
    OUT/episode_<N>.html     one episode: every camera's video, each state and action dimension over time;
                             a cursor on every plot follows the video, and clicking a plot, the frame slider or
                             the arrow keys move every video to that frame

No server and no network: the pages open from disk (``file://``), their script and styles inline. Videos
are linked, not copied: an episode page points at the dataset's video files by relative path (the dataset
and OUT can move together) and plays the episode's span of each (``from_timestamp`` to ``to_timestamp``).
A video file that is not there is named on the page in its place, and so is one the browser cannot play.

``DIR`` may also be a ``vla-eval`` run directory (``results.json``, ``videos/<task>.mp4``): the list has each
task's episodes with seed and success, and each episode's page its task's video (vla-eval keeps the first
episode, the first success and the first failure of a task, one after the other). vla-eval keeps no
per-step state or action, so those pages have no plots; a recording of the same policy does
(``vla-deploy record=``, then this command on the recording).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla.data.browse_page import EpisodeView, Series, Video, episode_page, index_page, page_name
from vla.data.layout import ACTION, STATE, DatasetError, camera_of
from vla.data.meta import DatasetMeta, load_meta, video_episode_column
from vla.data.table import load_table

RESULTS = "results.json"  # a vla-eval run's results document (docs/evaluation.md)
EXTRA = "vla/"  # vla-stack's per-episode columns (vla/sim_task, vla/seed, vla/success)


@dataclass(frozen=True)
class Browsable:
    title: str
    summary: list[str]  # lines under the title of the list
    episodes: list[EpisodeView]


def browsable(source: str | Path) -> Browsable:
    """A vla-eval run directory (it holds results.json), else a dataset directory or Hub id."""
    path = Path(source)
    if (path / RESULTS).is_file():
        return evaluation_run(path)
    return dataset(load_meta(source))


def dataset(meta: DatasetMeta) -> Browsable:
    table = load_table(meta)
    series_specs = [(key, _labels(meta, key)) for key in (STATE, ACTION) if key in meta.features]
    columns = {STATE: table.state, ACTION: table.action}
    episodes = []
    for row in meta.episodes:
        index = row["episode_index"]
        rows = slice(table.episode_starts[index], table.episode_starts[index + 1])
        series = [Series(key, labels, _as_2d(columns[key][rows])) for key, labels in series_specs]
        success = row.get(EXTRA + "success")
        episodes.append(
            EpisodeView(
                index=index,
                task=row.get(EXTRA + "sim_task"),
                instruction=row["tasks"][0] if row["tasks"] else "",
                length=row["length"],
                fps=meta.fps,
                success=None if success is None else bool(success),
                seed=row.get(EXTRA + "seed"),
                videos=[_dataset_video(meta, row, key) for key in meta.camera_keys],
                series=series,
            )
        )
    robot = meta.info.get("robot_type") or "unknown"
    summary = [
        f"{meta.root.resolve()}",
        f"{meta.total_episodes} episodes, {meta.total_frames} frames at {meta.fps:g} fps, "
        f"{len(meta.tasks)} tasks, cameras {[camera_of(key) for key in meta.camera_keys]}, robot {robot}",
    ]
    return Browsable(f"Dataset {meta.root.name}", summary + _success_line(episodes), episodes)


def _labels(meta: DatasetMeta, key: str) -> list[str]:
    width = int(np.prod(meta.features[key]["shape"]))
    names = meta.features[key].get("names")
    if isinstance(names, dict):  # LeRobot's older {"motors": [...]} form
        names = next(iter(names.values()), None)
    if not isinstance(names, list) or len(names) != width:
        names = [f"{key.rsplit('.', 1)[-1]}[{i}]" for i in range(width)]
    return [str(name) for name in names]


def _as_2d(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1).astype(np.float64)


def _dataset_video(meta: DatasetMeta, row: dict, key: str) -> Video:
    path = meta.video_file(
        key, row[video_episode_column(key, "chunk_index")], row[video_episode_column(key, "file_index")]
    )
    start = float(row[video_episode_column(key, "from_timestamp")])
    end = float(row[video_episode_column(key, "to_timestamp")])
    return Video(camera_of(key), path, start, end, path.relative_to(meta.root).as_posix())


def evaluation_run(run: Path) -> Browsable:
    try:
        document = json.loads((run / RESULTS).read_text())
        tasks, protocol = document["tasks"], document["protocol"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise DatasetError(run / RESULTS, f"not a vla-eval results document ({error})") from None
    fps = float(protocol.get("control_hz") or 10)
    episodes, lines = [], []
    for task, entry in tasks.items():
        lines.append(
            f"{task}: {entry['successes']}/{entry['episodes']} successes "
            f"({entry['success_rate']:.0%}, 95% CI {entry['ci95'][0]:.0%}-{entry['ci95'][1]:.0%})"
        )
        video = entry.get("video")
        videos = [Video(task, run / video, 0.0, None, video)] if video else []
        for result in entry.get("episode_results", []):
            episodes.append(
                EpisodeView(
                    index=len(episodes),
                    task=task,
                    instruction=str(result.get("instruction", "")),
                    length=int(result["length"]),
                    fps=fps,
                    success=bool(result["success"]),
                    seed=result.get("seed"),
                    videos=videos,
                    series=[],
                    note=f"The video is {task}'s: its first episode, first success and first failure, one "
                    "after the other. vla-eval keeps no per-step state or action, hence no plots.",
                )
            )
    checkpoint = protocol.get("checkpoint") or protocol.get("policy", "")
    summary = [f"{run.resolve()}", f"policy {checkpoint}, split {protocol.get('split')}", *lines]
    return Browsable(f"Evaluation {run.resolve().name}", summary + _success_line(episodes), episodes)


def _success_line(episodes: list[EpisodeView]) -> list[str]:
    judged = [episode.success for episode in episodes if episode.success is not None]
    if not judged:
        return []
    return [f"success {sum(judged)}/{len(judged)} episodes ({sum(judged) / len(judged):.0%})"]


def write_browser(source: str | Path, out: str | Path) -> Path:
    """Write the pages of ``source`` (a dataset, a Hub id or a vla-eval run) under ``out``; the index's path."""
    found = browsable(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    episodes = found.episodes
    for position, episode in enumerate(episodes):
        before = episodes[position - 1].index if position > 0 else None
        after = episodes[position + 1].index if position + 1 < len(episodes) else None
        page = episode_page(found.title, episode, out, before, after)
        (out / page_name(episode.index)).write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(index_page(found.title, found.summary, episodes), encoding="utf-8")
    return index
