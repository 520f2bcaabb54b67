"""An auxiliary training target for the vision: the state the demonstration ends in.

Behaviour cloning teaches the vision little when the proprioception already tells the next action on most
frames (vla/model/state.py): the images matter on the few frames where the task is decided, and the policy
fits the rest without looking. Where an episode ends (the gripper at the drawer's handle, the cube over the
bin) is settled from its first frame by the scene and the instruction together: on OpenDrawer and
CloseDrawer the scene alone decides it, but on PickUp, Stack, PressButton, PushToTarget, PlaceOnTarget and
PlaceInBin the instruction picks which object or target among several. The head therefore reads the image
tokens and the instruction (the model's instruction vector, else its prompt embeddings mean-pooled), so
the target is a function of its input on every task. Asking it to predict the end state trains the vision to find what the task acts on, on every
frame, from a label every dataset already holds: the last frame's ``observation.state`` (no object poses
need recording). Used in training only.
"""

from __future__ import annotations

import torch
from torch import nn


def pool_prompt(text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """text (B, L, D) prompt embeddings, text_mask (B, L) -> (B, D): their mean, left padding left out.
    Order-blind: the model's instruction vector (vla/model/language.py) replaces it where there is one."""
    weights = text_mask.float().unsqueeze(-1)  # (B, L, 1)
    return (text.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class GoalHead(nn.Module):
    """[image tokens flattened (their order says which camera and which query), instruction vector]
    -> MLP -> (B, S)."""

    def __init__(self, tokens: int, dim: int, state_dim: int, hidden: int = 256):
        super().__init__()
        self.tokens = tokens
        self.net = nn.Sequential(
            nn.Linear((tokens + 1) * dim, hidden), nn.GELU(), nn.Linear(hidden, state_dim)
        )

    def forward(self, image_tokens: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """image_tokens (B, N*T, D), instruction (B, D) -> (B, S)."""
        return self.net(torch.cat([image_tokens.float().flatten(1), instruction.float()], dim=1))

    def loss(
        self, image_tokens: torch.Tensor, instruction: torch.Tensor, goal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean squared error, mean absolute error) against the normalized (B, S) final state."""
        error = self(image_tokens, instruction) - goal
        return error.square().mean(), error.detach().abs().mean()
