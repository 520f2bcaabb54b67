"""Proprioception as one LLM token (PaLM-E style): normalized state -> MLP -> (B, 1, hidden)."""

from __future__ import annotations

import torch
from torch import nn


class StateEncoder(nn.Module):
    def __init__(self, state_dim: int, out_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, state: torch.Tensor) -> torch.Tensor:  # (B, S) normalized -> (B, 1, out_dim)
        return self.net(state).unsqueeze(1)
