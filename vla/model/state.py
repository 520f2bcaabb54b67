"""Proprioception as one LLM token (PaLM-E style): normalized state -> MLP -> (B, 1, hidden).

``dropout`` (training only) replaces a sample's state token by a learned "no state" token. A policy fed its
own proprioception can learn to read the task from where the arm already is: after the first move the
state tells which way to go, so the images are needed on only a few frames of each demonstration and
the policy picks a direction at random there (causal confusion, de Haan et al. 2019; "copycat", Wen et al.
2020). Without the state on some samples the images must carry the task.

With ``dropout`` 1 the state is never read, in training or after: the MLP is not built at all, only the
"no state" token. Weights that never get a gradient would make multi-GPU training (DDP) fail, and would
be dead weight in every checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

STATE_MLP = "net."  # the MLP's parameter names, within the encoder


class StateEncoder(nn.Module):
    def __init__(self, state_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"state dropout must be a probability in [0, 1], got {dropout}")
        self.dropout = dropout
        self.net = None
        if dropout < 1.0:
            self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        if dropout > 0:
            self.missing = nn.Parameter(torch.zeros(out_dim))
        self.register_load_state_dict_pre_hook(_drop_unused_state_mlp)

    def forward(self, state: torch.Tensor) -> torch.Tensor:  # (B, S) normalized -> (B, 1, out_dim)
        if self.net is None:
            return self.missing.expand(state.shape[0], 1, -1)
        token = self.net(state)
        if self.training and self.dropout > 0:
            drop = torch.rand(token.shape[0], 1, device=token.device) < self.dropout  # (B, 1)
            token = torch.where(drop, self.missing.to(token.dtype), token)
        return token.unsqueeze(1)


def _drop_unused_state_mlp(module: StateEncoder, state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints saved with dropout 1 before the MLP was left out still hold its weights; they never
    touched an output (the forward pass never ran the MLP), so leaving them out loads the same policy."""
    if module.net is None:
        for key in [k for k in state_dict if k.startswith(prefix + STATE_MLP)]:
            del state_dict[key]
