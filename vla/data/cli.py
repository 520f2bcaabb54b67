"""``vla-dataset``: look at, check, render and re-derive the statistics of a LeRobotDataset v3.0.

    vla-dataset info DIR                      # a summary: features, episodes, tasks, statistics
    vla-dataset validate DIR [--full]         # every file, offset and statistic; --full decodes every frame
    vla-dataset view DIR --episode 3          # one episode as mp4: cameras side by side, text overlaid
    vla-dataset view DIR --html OUT           # static pages: the episode list, each episode's videos and
                                              # state/action plots (DIR may be a vla-eval run: vla/data/browse.py)
    vla-dataset stats DIR                     # recompute meta/stats.json from the data (as the writer did)

DIR is a dataset directory or a Hugging Face Hub id ``user/name`` in the local cache (``vla.data.hub``).
Exit status 0 when all is well, 1 when ``validate`` finds problems or a file is missing or corrupt (the
message names the file and the field).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from vla.data.browse import write_browser
from vla.data.checks import validate
from vla.data.committed import committed_histograms
from vla.data.layout import (
    ACTION,
    STATE,
    DatasetError,
    camera_of,
)
from vla.data.lock import DatasetLock
from vla.data.meta import DatasetMeta, load_meta, video_episode_column
from vla.data.overlay import episode_frames, overlay_text
from vla.data.stats import RunningStats, pixel_histogram
from vla.data.stats_checks import numeric_columns
from vla.data.table import load_table
from vla.data.video import decode_frames, encode_video
from vla.data.writer import write_stats


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def info(meta: DatasetMeta) -> str:
    lines = [
        f"{meta.root}: LeRobotDataset {meta.info['codebase_version']}, robot {meta.info.get('robot_type')}",
        f"  {meta.total_episodes} episodes, {meta.total_frames} frames at {meta.fps} fps "
        f"({meta.total_frames / meta.fps / 60:.1f} min), {len(meta.tasks)} tasks, {_size_mb(meta.root):.1f} MB",
        "  features:",
    ]
    for key, spec in meta.features.items():
        codec = spec.get("info", {}).get("video.codec")
        lines.append(f"    {key:32s} {spec['dtype']:8s} {spec['shape']}" + (f" ({codec})" if codec else ""))
    lengths = [row["length"] for row in meta.episodes]
    if lengths:
        lines.append(f"  episode length: min {min(lengths)}, mean {np.mean(lengths):.1f}, max {max(lengths)}")
    per_task = Counter(task for row in meta.episodes for task in row["tasks"])
    lines.append("  most common tasks:")
    lines += [f"    {count:5d}  {task}" for task, count in per_task.most_common(8)]
    for feature in (STATE, ACTION):
        if feature in meta.stats:
            stats = meta.require_stats(feature, ("q01", "q99"))
            lines.append(f"  {feature} q01: {np.round(stats['q01'], 3).tolist()}")
            lines.append(f"  {feature} q99: {np.round(stats['q99'], 3).tolist()}")
    return "\n".join(lines)


def recompute_stats(meta: DatasetMeta) -> str:
    """stats.json from every row of the data files and every frame (exact quantiles); returns where the image
    statistics came from.

    Image statistics come from the raw frames' pixel histograms that vla-stack's writer keeps per episode,
    so they are the writer's, bit for bit. A dataset without them (another writer's) has its videos decoded
    instead: statistics of what a loader sees, which differ from the raw frames' by the codec's error (H.264
    moved a 9-episode recording's q99 by up to 0.14 and its mean by up to 0.006, docs/datasets.md).
    """
    table = load_table(meta)
    running = {name: RunningStats.of(values, name) for name, values in numeric_columns(meta, table).items()}
    try:
        histograms = committed_histograms(meta)
        source = "the recorded pixel histograms"
    except DatasetError:
        histograms = {key: np.zeros((3, 256), np.int64) for key in meta.camera_keys}
        for row in meta.episodes:
            for key in meta.camera_keys:
                histograms[key] += pixel_histogram(_episode_video(meta, row, key))
        source = "the decoded videos"
    write_stats(meta.root, running, histograms)
    return source


def _episode_video(meta: DatasetMeta, row: dict, key: str) -> np.ndarray:
    path = meta.video_file(
        key, row[video_episode_column(key, "chunk_index")], row[video_episode_column(key, "file_index")]
    )
    start = row[video_episode_column(key, "from_timestamp")]
    return decode_frames(path, start + np.arange(row["length"]) / meta.fps)


def view(meta: DatasetMeta, episode: int, out: Path) -> Path:
    if not 0 <= episode < meta.total_episodes:
        raise ValueError(f"episode must be in [0, {meta.total_episodes}), got {episode}")
    row = meta.episodes[episode]
    table = load_table(meta)
    rows = slice(table.episode_starts[episode], table.episode_starts[episode + 1])
    videos = {camera_of(key): _episode_video(meta, row, key) for key in meta.camera_keys}
    frames = episode_frames(videos)
    text = [
        f"ep {episode} t {t:3d} | {row['tasks'][0]}\naction " + " ".join(f"{v:+.2f}" for v in action)
        for t, action in enumerate(table.action[rows])
    ]
    frames = np.stack([overlay_text(frame, line) for frame, line in zip(frames, text, strict=True)])
    encode_video(frames, out, meta.fps)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla-dataset", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("info", "summary of the dataset"),
        ("validate", "check every file and offset"),
        ("view", "render one episode to mp4"),
        ("stats", "recompute meta/stats.json"),
    ):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("root", help="dataset directory, or a Hub id user/name in the local cache")
    commands.choices["validate"].add_argument("--full", action="store_true", help="decode every video frame")
    commands.choices["view"].add_argument("--episode", type=int, default=0)
    commands.choices["view"].add_argument("--out", type=Path, help="mp4 path (default episode_<N>.mp4)")
    commands.choices["view"].add_argument(
        "--html", type=Path, help="write browsable pages (index.html) to this directory instead of an mp4"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "view" and args.html is not None:
            return _browse(args)
        meta = load_meta(args.root)
        if args.command == "info":
            print(info(meta))
        elif args.command == "validate":
            problems = validate(meta, full=args.full)
            for problem in problems:
                print(f"problem: {problem}")
            print(
                f"{'INVALID' if problems else 'OK'}: {meta.total_episodes} episodes, {meta.total_frames} frames"
            )
            return 1 if problems else 0
        elif args.command == "view":
            out = view(meta, args.episode, args.out or Path(f"episode_{args.episode:06d}.mp4"))
            print(f"wrote {out}")
        elif args.command == "stats":
            with DatasetLock(meta.root):  # stats.json is the writer's too: never rewrite it under a recorder
                source = recompute_stats(meta)
            print(f"wrote {meta.root / 'meta/stats.json'} (image statistics from {source})")
    except (DatasetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _browse(args) -> int:
    if args.out is not None or args.episode != 0:
        raise ValueError("--html writes every episode's page: drop --episode and --out (one episode's mp4)")
    index = write_browser(args.root, args.html)
    print(f"wrote {index} and a page per episode beside it; open it in a browser (no server needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
