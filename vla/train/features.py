"""The pretrained trunk's maps, computed once per recorded frame and cached beside the decoded frames.

A frozen trunk (vision.kind ``efficientnet_lite0``) is a pure function of the picture, so computing it on every
training step repeats work: vla-train runs it once over each camera's frame cache (``<root>/.cache``) and
stores every map as float16 rows, ``<camera>_<H>x<W>_<trunk>_<map>.f16``, with a json of what it was built
from: the trunk and its weights file, the image size, the crop (none: the whole picture) and the frame
cache's own fingerprint (the videos it was decoded from). Any difference rebuilds it; a stale cache is never
read. The samples then carry the maps instead of the pictures (VLADataset.use_maps).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vla.data.atomic import atomic_path, write_json_atomic
from vla.data.cache import MemmapFrames, read_record
from vla.data.dataset import VLADataset
from vla.model.efficientnet import NAME, EfficientNetLite0Trunk, weights_file
from vla.model.lite_vision import trunk_maps

VERSION = 1
CROP = "none"  # the whole picture; shifted crops would each need maps of their own
BATCH = 64  # pictures per trunk call


def attach_trunk_maps(datasets: list[VLADataset | None], trunk: EfficientNetLite0Trunk) -> None:
    """Build (or reuse, when current) each camera's maps and make the datasets' samples carry them."""
    first = next(d for d in datasets if d is not None)
    maps = {slot: _camera_maps(first.image_cache(slot), trunk) for slot in first.cameras}
    for dataset in datasets:
        if dataset is not None:
            dataset.use_maps(maps)


def _key(frames: MemmapFrames) -> dict:
    weights = weights_file()
    return {
        "version": VERSION,
        "trunk": NAME,
        "weights": {"file": weights.name, "bytes": weights.stat().st_size},
        "image_size": list(frames.shape[1:3]),
        "crop": CROP,
        "frames": frames.fingerprint,
    }


def _camera_maps(frames: MemmapFrames, trunk: EfficientNetLite0Trunk) -> dict[str, MemmapFrames]:
    key = _key(frames)
    with torch.no_grad():
        probe = trunk_maps(trunk, torch.zeros(1, 3, *frames.shape[1:3]))
    shapes = {name: (frames.shape[0], *m.shape[1:]) for name, m in zip(probe._fields, probe, strict=True)}
    stem = frames.path.with_suffix("").name  # agentview_128x128
    paths = {name: frames.path.with_name(f"{stem}_{NAME}_{name}.f16") for name in shapes}
    info = frames.path.with_name(f"{stem}_{NAME}.json")
    current = read_record(info) == key and all(
        paths[n].exists() and paths[n].stat().st_size == 2 * int(np.prod(shapes[n])) for n in shapes
    )
    if not current:
        info.unlink(missing_ok=True)  # a half-built cache must never look current
        _build(frames, trunk, paths, shapes)
        write_json_atomic(info, key)
    return {name: MemmapFrames(paths[name], shapes[name], np.float16, key) for name in shapes}


def _build(frames: MemmapFrames, trunk, paths: dict[str, Path], shapes: dict[str, tuple]) -> None:
    """Run the trunk over every frame of the cache, in batches, into one float16 file per map."""
    with contextlib.ExitStack() as stack:  # the json written after them says the maps are complete
        tmps = {name: stack.enter_context(atomic_path(path)) for name, path in paths.items()}
        arrays = {n: np.memmap(tmps[n], np.float16, mode="w+", shape=shapes[n]) for n in shapes}
        label = f"trunk maps {frames.path.with_suffix('').name}"
        with tqdm(total=frames.shape[0], desc=label, unit="frame") as bar, torch.no_grad():
            for start in range(0, frames.shape[0], BATCH):
                rows = np.arange(start, min(start + BATCH, frames.shape[0]))
                pictures = torch.from_numpy(frames.read(rows)).permute(0, 3, 1, 2).float() / 255.0
                for name, value in zip(shapes, trunk_maps(trunk, pictures), strict=True):
                    arrays[name][rows] = value.numpy().astype(np.float16)
                bar.update(len(rows))
        for array in arrays.values():
            array.flush()
        del arrays
