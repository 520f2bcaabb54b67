"""FiLM: the instruction scales and shifts the vision encoder's feature maps (Perez et al. 2018).

After each residual block of the ResNet, ``h = (1 + gamma) * h + beta`` per channel, with ``gamma`` and
``beta`` linear in the instruction vector (``vla/model/language.py``). LIBERO's ResNet policy and
OpenVLA-OFT+ condition this way so that which object the features pick out depends on the words; late
fusion (reading the instruction only after the image is encoded) lets a from-scratch policy ignore them.
The projections start at zero, so an untrained FiLM is the identity and leaves the encoder as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FiLM(nn.Module):
    """condition (M, E) -> one (gamma, beta) pair per block, each (M, C_block, 1, 1)."""

    def __init__(self, condition_dim: int, channels: Sequence[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(condition_dim, 2 * c) for c in channels)
        for layer in self.layers:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, condition: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        pairs = []
        for layer in self.layers:
            gamma, beta = layer(condition)[:, :, None, None].chunk(2, dim=1)
            pairs.append((gamma, beta))
        return pairs


def modulate(h: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(M, C, H, W) features modulated by one block's (gamma, beta)."""
    gamma, beta = pair
    return (1 + gamma) * h + beta
