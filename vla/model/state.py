"""Proprioception as one LLM token (PaLM-E style): normalized state -> MLP -> (B, 1, hidden).

``dropout`` (training only) replaces a sample's state token by a learned "no state" token. A policy fed its
own proprioception can learn to read the task from where the arm already is: after the first move the
state tells which way to go, so the images are needed on only a few frames of each demonstration and
the policy picks a direction at random there (causal confusion, de Haan et al. 2019; "copycat", Wen et al.
2020). Without the state on some samples the images must carry the task.
"""

from __future__ import annotations

import torch
from torch import nn


class StateEncoder(nn.Module):
    def __init__(self, state_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        self.dropout = dropout
        if dropout > 0:
            self.missing = nn.Parameter(torch.zeros(out_dim))

    def forward(self, state: torch.Tensor) -> torch.Tensor:  # (B, S) normalized -> (B, 1, out_dim)
        if self.dropout >= 1.0:  # never seen in training, so never read (nor computed)
            return self.missing.expand(state.shape[0], 1, -1)
        token = self.net(state)
        if self.training and self.dropout > 0:
            drop = torch.rand(token.shape[0], 1, device=token.device) < self.dropout  # (B, 1)
            token = torch.where(drop, self.missing.to(token.dtype), token)
        return token.unsqueeze(1)
