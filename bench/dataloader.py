"""Training-batch throughput of ``VLADataset`` through a torch DataLoader: video decoding vs the memmap cache.

    MUJOCO_GL=egl .venv/bin/python bench/dataloader.py                 # records a dataset first (vla-record)
    .venv/bin/python bench/dataloader.py --dataset data/demos --batches 20

The dataset is recorded once with the scripted experts (``vla-record task=all``, 128x128 agentview and wrist
cameras, libx264) into ``--workdir`` and reused by later runs; ``--dataset`` reads any v3.0 dataset instead.

Timed, per configuration: ``--batches`` shuffled batches of ``--batch-size`` samples (both cameras at
``--image-size``, ``--chunk-size`` actions each) after one warm-up batch, which pays for starting the workers
(``spawn``) and opening the videos and is reported on its own. torch uses the cores the workers leave free.
Also: the cache build (every video decoded front to back, once), single-frame random access, and recording
throughput (frames/s of ``vla-record task=all`` with 1 and 2 workers, process start-up included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from vla.data.cache import CACHE_DIR, VideoFrames
from vla.data.dataset import VLADataset, camera_frames, collate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, help="an existing v3.0 dataset (default: record one)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vla-bench-dataloader"))
    parser.add_argument("--episodes-per-task", type=int, default=13, help="when recording (8 tasks)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=(0, 2))
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record-episodes", type=int, default=4, help="per task, for recording throughput")
    return parser.parse_args()


def run_record(root: Path, episodes_per_task: int, workers: int) -> None:
    record = shutil.which("vla-record", path=str(Path(sys.executable).parent)) or shutil.which("vla-record")
    if record is None:
        sys.exit("vla-record not found: install the project (pip install -e .) or pass --dataset")
    args = [record, "task=all", f"episodes_per_task={episodes_per_task}", f"out={root}", f"workers={workers}"]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def record_dataset(workdir: Path, episodes_per_task: int) -> Path:
    root = workdir / "demos"
    if not (root / "meta" / "info.json").is_file():
        run_record(root, episodes_per_task, workers=2)
    return root


def recording_rate(workdir: Path, episodes_per_task: int, workers: int) -> float:
    """Frames/s of a fresh ``vla-record task=all`` run (process start-up included), both cameras."""
    root = workdir / f"record-w{workers}"
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    run_record(root, episodes_per_task, workers)
    seconds = time.perf_counter() - start
    frames = VLADataset(root).meta.total_frames
    shutil.rmtree(root)
    return frames / seconds


def time_loader(dataset: VLADataset, args, workers: int) -> tuple[float, float]:
    """(seconds to the first batch, samples/s over the timed batches)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
    # Exactly the batches used, so each epoch ends and its workers exit cleanly (dropping an iterator
    # mid-epoch can abort a worker that is still sending a batch: a torch shutdown race, not an error here).
    sampler = RandomSampler(
        dataset,
        num_samples=(args.batches + 1) * args.batch_size,
        generator=torch.Generator().manual_seed(args.seed),
    )
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        multiprocessing_context="spawn" if workers else None,
        collate_fn=collate,
    )
    start = time.perf_counter()
    batches = iter(loader)
    next(batches)
    first = time.perf_counter() - start
    start = end = time.perf_counter()
    samples = 0
    for batch in batches:
        samples += len(batch["instruction"])
        end = time.perf_counter()  # the last batch's arrival, not the workers' shutdown after it
    return first, samples / (end - start)


def random_access(dataset: VLADataset, frames: int, seed: int) -> float:
    """Single frames of one camera, in random order, decoded on demand: frames/s."""
    torch.set_num_threads(os.cpu_count() or 1)
    source = VideoFrames(
        camera_frames(dataset.meta, dataset.table, next(iter(dataset.cameras.values()))), dataset.meta.fps
    )
    rows = np.random.default_rng(seed).integers(0, dataset.meta.total_frames, frames)
    start = time.perf_counter()
    for k in range(frames):
        source.read(rows[k : k + 1])
    return frames / (time.perf_counter() - start)


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU"
    )


def spread(values: list[float], digits: int = 0) -> str:
    """median (min-max) of repeated measurements."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def build_cache(root: Path, options: dict) -> tuple[VLADataset, float]:
    shutil.rmtree(root / CACHE_DIR, ignore_errors=True)
    start = time.perf_counter()
    dataset = VLADataset(root, cache="memmap", **options)
    return dataset, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    root = args.dataset or record_dataset(args.workdir, args.episodes_per_task)
    options = {"image_size": tuple(args.image_size), "chunk_size": args.chunk_size}
    decoded = VLADataset(root, **options)
    meta = decoded.meta
    print(f"{cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, PyAV {av.__version__}")
    print(
        f"dataset {root}: {meta.total_episodes} episodes, {meta.total_frames} frames, cameras {list(decoded.cameras)}"
    )
    print(f"median (min-max) of {args.repeats} runs\n")
    builds = [build_cache(root, options) for _ in range(args.repeats)]
    cached, frames = builds[-1][0], meta.total_frames * len(decoded.cameras)
    print(f"cache build: {spread([b for _, b in builds], 2)} s for {frames} frames (all cameras)")
    rates = [random_access(decoded, 500, args.seed + k) for k in range(args.repeats)]
    print(f"random access, one camera, one frame per read, decoded on demand: {spread(rates)} frames/s")
    print("\n| source | workers | samples/s | first batch (s) |\n| --- | ---: | ---: | ---: |")
    for name, dataset in (("video decoding", decoded), ("memmap cache", cached)):
        for workers in args.workers:
            runs = [time_loader(dataset, args, workers) for _ in range(args.repeats)]
            first, rate = (spread([run[i] for run in runs], d) for i, d in ((0, 2), (1, 0)))
            print(f"| {name} | {workers} | {rate} | {first} |", flush=True)
    print(f"\nrecording, vla-record task=all episodes_per_task={args.record_episodes}, 2 cameras:")
    for workers in (1, 2):
        rates = [recording_rate(args.workdir, args.record_episodes, workers) for _ in range(args.repeats)]
        print(f"  workers={workers}: {spread(rates)} frames/s", flush=True)


if __name__ == "__main__":
    main()
