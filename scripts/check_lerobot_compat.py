"""Check that LeRobotDataset v3.0 directories load in real LeRobot (0.4.x) and read back what we wrote.

Runs in a scratch venv that has lerobot installed (never the project venv); see docs/datasets.md,
"Compatibility with LeRobot", for how to build it. Usage::

    HF_HUB_OFFLINE=1 /tmp/lerobot-venv/bin/python scripts/check_lerobot_compat.py /tmp/ours [DIR ...]

For each DIR it first builds a REFERENCE dataset with LeRobot's own writer (same cameras, image size,
state/action widths, fps and codec as DIR) and runs the same checks on it (a sanity check of the checks, and
of our reader on LeRobot's files), then on DIR:

- loads DIR with ``LeRobotDataset(repo_id="local/x", root=DIR)``; num_episodes/num_frames match info.json;
- for every frame (``--stride`` to sample), LeRobot's observation.state, action, timestamp, episode_index,
  frame_index, index, task_index and task equal the data parquet read directly with pyarrow;
- LeRobot decodes every sampled video frame (its 1e-4 s timestamp tolerance included) and the image equals
  our own decoding (``vla.data.video.decode_frames``) within ``--pixel-tol`` grey levels;
- with delta_timestamps (4 actions ahead, 1 frame of state/image history) LeRobot's items equal our reader's
  (``VLADataset(chunk_size=4, history=1)``) at both ends of every episode, padding masks included; an
  episode subset (``episodes=[last]``) loads;
- ``meta.stats`` has all 10 stat names for every feature, LeRobot's shapes, images on the 0-1 scale;
- a schema diff against the reference: info.json keys and feature specs, data/episodes/tasks parquet
  columns and arrow types, stats.json features. Every difference is printed (DIFF); they fail the run only
  with ``--strict``. Any FAIL makes the exit status 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local directories only; never the hub
# A private datasets cache: a regenerated DIR must never be served from a stale arrow cache.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="lerobot-compat-cache-")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from lerobot_reference import BOOKKEEPING, allow_torchvision_without_c_ops, build_reference
from lerobot_schema_diff import diff_schema, read_episodes, read_info

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # vla.data: our decoder and reader

STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")


class Report:
    """Collects PASS/FAIL/DIFF/NOTE lines; FAIL (and DIFF with --strict) makes the exit status 1."""

    def __init__(self, strict: bool):
        self.strict, self.failed = strict, False

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        self.failed |= not ok
        return ok

    def diff(self, where: str, ours, ref) -> None:
        print(f"DIFF {where}: ours={ours!r} lerobot={ref!r}")
        self.failed |= self.strict

    def note(self, text: str) -> None:
        print(f"NOTE {text}")


def read_frames(root: Path, info: dict) -> dict[str, np.ndarray]:
    """Every data parquet file of ``root`` (sorted, as LeRobot globs them), column -> array (N, ...)."""
    paths = sorted((root / "data").glob("*/*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    out = {}
    for key, spec in info["features"].items():
        if spec["dtype"] in ("video", "image"):
            continue
        column = table.column(key).combine_chunks()
        if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
            out[key] = np.stack(column.to_pylist()).astype(spec["dtype"])
        else:
            out[key] = column.to_numpy(zero_copy_only=False)
    return out


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task string, from tasks.parquet without pandas (its index column or a ``task`` column)."""
    table = pq.read_table(root / "meta/tasks.parquet")
    name = "__index_level_0__" if "__index_level_0__" in table.column_names else "task"
    return dict(zip(table.column("task_index").to_pylist(), table.column(name).to_pylist(), strict=True))


def open_lerobot(root: Path, report: Report, backend: str, **kwargs):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        ds = LeRobotDataset(repo_id="local/x", root=root, video_backend=backend, **kwargs)
    except Exception as error:  # report any loader failure, with its type, and go on to the next DIR
        report.check(False, f"load {root}", f"{type(error).__name__}: {error}")
        return None
    report.check(True, f"load {root}", f"video backend {ds.video_backend}, {ds.num_episodes} episodes")
    return ds


def check_counts(ds, root: Path, info: dict, report: Report) -> None:
    episodes = read_episodes(root)
    report.check(ds.num_episodes == info["total_episodes"], "num_episodes", f"{ds.num_episodes} vs info.json")
    report.check(ds.num_frames == info["total_frames"], "num_frames", f"{ds.num_frames} vs info.json")
    report.check(len(ds.hf_dataset) == info["total_frames"], "data rows", f"{len(ds.hf_dataset)} in LeRobot")
    report.check(
        len(ds.meta.episodes) == len(episodes), "episode rows", f"{len(ds.meta.episodes)} in LeRobot"
    )
    report.check(len(ds.meta.tasks) == info["total_tasks"], "tasks", f"{len(ds.meta.tasks)} vs total_tasks")


def sample_rows(total: int, stride: int) -> list[int]:
    return sorted(set(range(0, total, stride)) | {total - 1}) if total else []


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:  # (3, H, W) float in [0, 1] -> (H, W, 3) uint8
    return (image.numpy() * 255).round().clip(0, 255).astype(np.uint8).transpose(1, 2, 0)


def our_decoder():
    try:
        from vla.data.video import decode_frames
    except ImportError as error:
        raise SystemExit(f"cannot import vla.data.video.decode_frames from {REPO_ROOT}: {error}") from error
    return decode_frames


def check_frames(ds, root: Path, info: dict, report: Report, stride: int, pixel_tol: int) -> None:
    """LeRobot's item i == our parquet row i, and its decoded images == ours (grey levels)."""
    ours, tasks = read_frames(root, info), read_tasks(root)
    video_keys = [k for k, spec in info["features"].items() if spec["dtype"] == "video"]
    rows = sample_rows(info["total_frames"], stride)
    errors: dict[str, list[str]] = {}
    images = {key: {} for key in video_keys}  # row -> (H, W, 3) uint8 as LeRobot decoded it
    for i in rows:
        try:
            item = ds[i]
        except Exception as error:  # a FrameTimestampError or a schema error names the row
            errors.setdefault("getitem", []).append(f"row {i}: {type(error).__name__}: {error}")
            continue
        for key, expected in ours.items():
            got = item[key].numpy()
            if got.shape != np.shape(expected[i]) or not np.array_equal(got, expected[i]):
                errors.setdefault(key, []).append(f"row {i}: lerobot {got} ours {expected[i]}")
        if item["task"] != tasks[int(ours["task_index"][i])]:
            errors.setdefault("task", []).append(f"row {i}: {item['task']!r}")
        for key in video_keys:
            images[key][i] = to_uint8_hwc(item[key])
    for key in ["getitem", *ours, "task"]:
        found = errors.get(key, [])
        report.check(not found, f"values {key}", f"{len(rows)} rows" if not found else "; ".join(found[:3]))
    compare_images(root, info, ours, images, report, pixel_tol)


def compare_images(root, info, ours, images, report: Report, pixel_tol: int) -> None:
    decode_frames = our_decoder()
    by_episode = {e["episode_index"]: e for e in read_episodes(root)}
    for key, decoded in images.items():
        if not decoded:
            report.check(False, f"video {key} lerobot vs ours", "LeRobot decoded no frame")
            continue
        worst, mean, count = 0, [], 0
        rows = np.array(sorted(decoded))
        for episode in np.unique(ours["episode_index"][rows]):
            ep = by_episode[int(episode)]
            ep_rows = rows[ours["episode_index"][rows] == episode]
            path = root / info["video_path"].format(
                video_key=key,
                chunk_index=ep[f"videos/{key}/chunk_index"],
                file_index=ep[f"videos/{key}/file_index"],
            )
            times = ep[f"videos/{key}/from_timestamp"] + ours["timestamp"][ep_rows].astype(np.float64)
            mine = decode_frames(path, times).astype(np.int16)
            theirs = np.stack([decoded[r] for r in ep_rows]).astype(np.int16)
            if mine.shape != theirs.shape:
                report.check(
                    False, f"video {key}", f"episode {episode}: ours {mine.shape} lerobot {theirs.shape}"
                )
                return
            delta = np.abs(mine - theirs)
            worst, count = max(worst, int(delta.max())), count + len(ep_rows)
            mean.append(float(delta.mean()))
        detail = f"{count} frames, max |diff| {worst}, mean {np.mean(mean) if mean else 0:.3f} grey levels"
        report.check(count > 0 and worst <= pixel_tol, f"video {key} lerobot vs ours", detail)


def compare_sample(theirs: dict, mine: dict, video_keys: list[str], pixel_tol: int, row: int) -> list[str]:
    """Differences between a LeRobot item (with delta_timestamps) and our VLADataset sample of one frame."""
    pairs = {
        "action chunk": (theirs["action"].numpy(), mine["actions"].numpy()),
        "action padding": (theirs["action_is_pad"].numpy(), ~mine["action_mask"].numpy()),
        "state history": (theirs["observation.state"].numpy(), mine["state"].numpy()),
        "state padding": (theirs["observation.state_is_pad"].numpy(), ~mine["history_mask"].numpy()),
        "task": (np.array(theirs["task"]), np.array(mine["instruction"])),
    }
    problems = [
        f"row {row}: {name} lerobot {a.tolist()} ours {b.tolist()}"
        for name, (a, b) in pairs.items()
        if not np.array_equal(a, b)
    ]
    for key in video_keys:  # LeRobot: (2, 3, H, W) float in [0, 1]; ours: (2, 3, H, W) uint8
        a = (theirs[key].numpy() * 255).round()
        b = mine["images"][key.removeprefix("observation.images.")].numpy().astype(np.float32)
        if a.shape != b.shape or np.abs(a - b).max() > pixel_tol:
            problems.append(f"row {row}: {key} history differs (shapes {a.shape} {b.shape})")
    return problems


def check_deltas(root: Path, info: dict, report: Report, backend: str, pixel_tol: int) -> None:
    """LeRobot with delta_timestamps (4 actions ahead, 1 frame of state/image history) against our reader,
    ``VLADataset(chunk_size=4, history=1)``, at both ends of every episode, where the padding happens."""
    from vla.data.dataset import VLADataset

    fps = info["fps"]
    video_keys = [k for k, spec in info["features"].items() if spec["dtype"] == "video"]
    deltas = {"action": [t / fps for t in range(4)], "observation.state": [-1 / fps, 0.0]}
    deltas.update({key: [-1 / fps, 0.0] for key in video_keys})
    ds = open_lerobot(root, report, backend, delta_timestamps=deltas)
    if ds is None:
        return
    ours, problems, rows = VLADataset(root, chunk_size=4, history=1), [], 0
    for ep in read_episodes(root):
        start, stop = ep["dataset_from_index"], ep["dataset_to_index"]
        for i in sorted({start, start + 1, stop - 2, stop - 1} & set(range(start, stop))):
            problems += compare_sample(ds[i], ours[i], video_keys, pixel_tol, i)
            rows += 1
    report.check(
        not problems, "delta_timestamps vs our VLADataset", "; ".join(problems[:3]) or f"{rows} rows"
    )
    last = read_episodes(root)[-1]
    subset = open_lerobot(root, report, backend, episodes=[last["episode_index"]])
    if subset is not None:
        first = subset[0]
        ok = len(subset) == last["length"] and int(first["index"]) == last["dataset_from_index"]
        report.check(ok, "episode subset", f"episode {last['episode_index']}: {len(subset)} frames")


def check_stats(ds, info: dict, report: Report) -> None:
    """LeRobot's meta.stats: all 10 stats per feature, LeRobot's shapes, images on the 0-1 scale."""
    stats = ds.meta.stats or {}
    for key, spec in info["features"].items():
        if key not in stats:
            if key in BOOKKEEPING:  # LeRobot writes them; no loader or normalizer reads them
                report.diff(f"stats.json {key}", "<missing>", "present")
            else:
                report.check(False, f"stats {key}", "missing from meta/stats.json")
            continue
        problems = [f"{s} missing" for s in STAT_NAMES if s not in stats[key]]
        image = spec["dtype"] in ("video", "image")
        shape = (3, 1, 1) if image else tuple(spec["shape"])
        problems += [
            f"{s} shape {np.shape(v)}"
            for s, v in stats[key].items()
            if s in STAT_NAMES and np.shape(v) != ((1,) if s == "count" else shape)
        ]
        if image and not all(
            0 <= np.min(stats[key][s]) <= np.max(stats[key][s]) <= 1 for s in ("min", "max")
        ):
            problems.append("image min/max outside the 0-1 scale")
        report.check(not problems, f"stats {key}", "; ".join(problems))


def guarded(report: Report, name: str, check, *args) -> None:
    """Run one check; an exception inside it (a LeRobot error, our decoder's DatasetError) is a FAIL."""
    try:
        check(*args)
    except Exception as error:  # reported with its type and message, then the next check runs
        report.check(False, name, f"{type(error).__name__}: {str(error)[:500]}")


def check_dir(root: Path, args, report: Report, scratch: Path) -> None:
    print(f"=== {root}")
    info = read_info(root)
    ref = build_reference(root, info, scratch / f"ref-{len(list(scratch.iterdir()))}")
    for name, path, meta, stride in (
        ("reference", ref, read_info(ref), 1),
        ("ours", root, info, args.stride),
    ):
        print(f"--- {name}: {path}")
        ds = open_lerobot(path, report, args.video_backend)
        if ds is None:
            continue
        guarded(report, f"{name} counts", check_counts, ds, path, meta, report)
        guarded(report, f"{name} frames", check_frames, ds, path, meta, report, stride, args.pixel_tol)
        guarded(report, f"{name} stats", check_stats, ds, meta, report)
        guarded(
            report, f"{name} deltas", check_deltas, path, meta, report, args.video_backend, args.pixel_tol
        )
    guarded(report, "schema diff", diff_schema, root, ref, report)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="LeRobotDataset v3.0 directories to check")
    parser.add_argument("--stride", type=int, default=1, help="check every STRIDE-th frame (and the last)")
    parser.add_argument(
        "--pixel-tol", type=int, default=4, help="max |LeRobot - ours| per pixel, grey levels"
    )
    parser.add_argument(
        "--video-backend", default="torchcodec", help="LeRobot video backend (torchcodec|pyav)"
    )
    parser.add_argument("--strict", action="store_true", help="schema differences (DIFF) fail the run too")
    args = parser.parse_args()
    allow_torchvision_without_c_ops()
    import datasets
    import lerobot

    datasets.disable_progress_bars()

    print(
        f"NOTE lerobot {lerobot.__version__ if hasattr(lerobot, '__version__') else '?'}, torch {torch.__version__}"
    )
    report = Report(args.strict)
    scratch = Path(tempfile.mkdtemp(prefix="lerobot-compat-"))
    try:
        for root in args.dirs:
            check_dir(root.resolve(), args, report, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(os.environ["HF_DATASETS_CACHE"], ignore_errors=True)
    print("RESULT", "FAIL" if report.failed else "PASS")
    return int(report.failed)


if __name__ == "__main__":
    sys.exit(main())
