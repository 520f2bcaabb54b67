"""An auxiliary training target for the vision: the state the demonstration ends in.

Behaviour cloning teaches the vision little when the proprioception already tells the next action on most
frames (vla/model/state.py): the images matter on the few frames where the task is decided, and the policy
fits the rest without looking. Where an episode ends (the gripper at the drawer's handle, the cube over the
bin) depends on the scene alone and is settled from its first frame. Asking the image tokens to predict it
trains the vision to find what the task acts on, on every frame, from a label every dataset already holds:
the last frame's ``observation.state`` (no object poses need recording). Used in training only.
"""

from __future__ import annotations

import torch
from torch import nn


class GoalHead(nn.Module):
    """The image tokens, flattened (their order says which camera and which query), -> MLP -> (B, S)."""

    def __init__(self, tokens: int, dim: int, state_dim: int, hidden: int = 256):
        super().__init__()
        self.tokens = tokens
        self.net = nn.Sequential(
            nn.Flatten(1), nn.Linear(tokens * dim, hidden), nn.GELU(), nn.Linear(hidden, state_dim)
        )

    def forward(self, image_tokens: torch.Tensor) -> torch.Tensor:  # (B, N*T, D) -> (B, S)
        return self.net(image_tokens.float())

    def loss(self, image_tokens: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean squared error, mean absolute error) against the normalized (B, S) final state."""
        error = self(image_tokens) - goal
        return error.square().mean(), error.detach().abs().mean()
