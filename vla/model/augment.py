"""Training-time image augmentation, applied inside the vision encoder so that every model config gets it
and inference never does.

Random shift (Kostrikov et al. 2020, DrQ; also diffusion policy's crop randomizer): pad each image by ``pad``
pixels, repeating its border, and crop it back at a random offset. With a few hundred demonstrations a
from-scratch encoder otherwise memorizes pixel positions; shifting forces features that hold across small
camera and object displacements. Draws from torch's global RNG, which the trainer seeds and checkpoints, so
resumed runs see the same shifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of ``images`` (M, C, H, W), any dtype, by an independent offset in [-pad, pad]^2."""
    if pad <= 0:
        return images
    count, _, height, width = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate").to(images.dtype)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, count, 1), device=images.device)
    rows = (torch.arange(height, device=images.device) + dy)[:, :, None]  # (M, H, 1)
    cols = (torch.arange(width, device=images.device) + dx)[:, None, :]  # (M, 1, W)
    picked = padded[torch.arange(count, device=images.device)[:, None, None], :, rows, cols]  # (M, H, W, C)
    return picked.permute(0, 3, 1, 2).contiguous()
