"""LeRobot side of check_lerobot_compat.py: import LeRobot beside a CPU-only torch, and write a reference.

Runs in the scratch LeRobot venv (see docs/datasets.md, "Compatibility with LeRobot").
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import torch

BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
ENCODERS = {"h264": "h264", "av1": "libsvtav1"}  # info.json video.codec -> LeRobot's vcodec argument


def allow_torchvision_without_c_ops() -> None:
    """Let ``import torchvision`` succeed when its C++ ops cannot load.

    PyPI's torchvision wheels are CUDA builds; beside a CPU-only torch their ``_C.so`` cannot load, and
    torchvision's import then dies registering fake kernels for ``torchvision::nms``/``qnms``. LeRobot imports
    torchvision only for ``transforms`` (and the old pyav VideoReader path); loading a video dataset with the
    torchcodec backend never calls a torchvision C++ op. Declaring the two op schemas lets the Python part
    import; calling the ops would still fail loudly. Does nothing when ``_C.so`` loads.
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    folder = Path(next(iter(spec.submodule_search_locations)))
    libraries = sorted(folder.glob("_C*.so"))
    try:
        if libraries:
            torch.ops.load_library(str(libraries[0]))
            return
    except OSError:
        pass
    print(
        "NOTE torchvision C++ ops unavailable (CUDA wheel beside CPU torch); declaring nms/qnms schemas only"
    )
    library = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    allow_torchvision_without_c_ops.library = library  # keep the registration alive


def build_reference(ours: Path, info: dict, out: Path) -> Path:
    """A 3-episode dataset written by LeRobot itself with the cameras, widths, fps and codec of ``ours``."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {  # LeRobot's validate_frame compares shapes as tuples
        key: {"dtype": spec["dtype"], "shape": tuple(spec["shape"]), "names": copy.deepcopy(spec["names"])}
        for key, spec in info["features"].items()
        if key not in BOOKKEEPING
    }
    codecs = {spec["info"]["video.codec"] for spec in info["features"].values() if spec["dtype"] == "video"}
    vcodec = ENCODERS.get(next(iter(codecs), "av1"), "libsvtav1")
    ds = LeRobotDataset.create(
        repo_id="local/ref", root=out, fps=int(info["fps"]), features=features, vcodec=vcodec
    )
    rng = np.random.default_rng(0)
    for episode, length in enumerate((6, 5, 4)):
        for _ in range(length):
            frame = {"task": f"reference task {episode % 2}"}
            for key, spec in features.items():
                if spec["dtype"] == "video":
                    frame[key] = rng.integers(0, 256, spec["shape"], dtype=np.uint8)
                else:
                    frame[key] = rng.standard_normal(spec["shape"]).astype(spec["dtype"])
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    print(f"NOTE reference dataset built by LeRobot's writer in {out} (vcodec {vcodec})")
    return out
