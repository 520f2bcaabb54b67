"""Image transforms the reader applies before a frame leaves the dataset: layout and size, never values.

Normalization is not done here: the model's processor owns it, with the dataset's stats.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def check_size(image_size) -> tuple[int, int] | None:
    """``None`` (keep the stored size) or a validated ``(H, W)`` of positive ints."""
    if image_size is None:
        return None
    size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in size):
        raise ValueError(f"image_size must be (H, W) with positive ints or None, got {image_size!r}")
    return int(size[0]), int(size[1])


def to_chw(frames: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, h, w) uint8 tensor, resized to ``size`` when it differs.

    Resizing is bilinear with antialiasing (a box prefilter when shrinking), in float, rounded back to uint8:
    plain bilinear on a 4x downscale aliases thin objects like gripper fingers away.
    """
    chw = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    if size is None or tuple(chw.shape[-2:]) == size:
        return chw  # a strided view; collate's stack makes the batch contiguous
    out = F.interpolate(chw.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def to_hwc(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) uint8 tensor -> (N, H, W, 3) uint8 array, the cache's layout."""
    return frames.permute(0, 2, 3, 1).contiguous().numpy()
