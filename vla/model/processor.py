"""Everything between a dataset batch and the network's tensors, and back: the policy's data contract.

In: state normalized with the dataset's q01/q99 to [-1, 1] (clipped to [-STATE_CLIP, STATE_CLIP]), the
instruction wrapped in the config's ``prompt`` template and tokenized by the backbone's own tokenizer
(left-padded, so every sequence's action tokens start at the same position), action chunks as tokens
(``vla.tokenizer.ActionTokenizer``).
Out: action tokens -> un-normalized actions with the same statistics. Missing statistics are an error naming
the feature and the key, never an identity fallback.
"""

from __future__ import annotations

import numpy as np
import torch

from vla.data.layout import ACTION, STATE
from vla.model.config import ModelConfig
from vla.tokenizer import ActionTokenizer

STATE_CLIP = 2.0  # states beyond the training range stay informative, but bounded
NEEDED_STATS = ("q01", "q99")
PROMPT_CACHE = 4096  # distinct instructions whose prompt token ids are kept


def required_stats(stats: dict, feature: str, width: int) -> dict[str, np.ndarray]:
    """q01 and q99 of ``feature``, checked: present, finite, of the model's width."""
    if feature not in stats:
        raise ValueError(f"normalization statistics missing for feature '{feature}' (have {sorted(stats)})")
    found = {}
    for name in NEEDED_STATS:
        if name not in stats[feature]:
            raise ValueError(f"normalization statistics of '{feature}' miss '{name}'")
        value = np.asarray(stats[feature][name], dtype=np.float64).reshape(-1)
        if value.shape != (width,) or not np.isfinite(value).all():
            raise ValueError(f"statistic '{name}' of '{feature}' must be {width} finite numbers, got {value}")
        found[name] = value
    return found


class Processor:
    def __init__(self, config: ModelConfig, stats: dict, text_tokenizer, action_token_ids: np.ndarray):
        self.config = config
        state = required_stats(stats, STATE, config.state_dim)
        action = required_stats(stats, ACTION, config.action_dim)
        self.state_q01, self.state_q99 = state["q01"], state["q99"]
        self.actions = ActionTokenizer(action["q01"], action["q99"], action_token_ids, config.num_bins)
        self.text = text_tokenizer
        self._prompts: dict[str, list[int]] = {}  # instruction -> its prompt's token ids

    def state(self, state: torch.Tensor) -> torch.Tensor:
        """(B, S) raw state -> normalized float32 (B, S)."""
        if state.shape[-1] != self.config.state_dim:
            raise ValueError(f"state has {state.shape[-1]} dims, the model expects {self.config.state_dim}")
        q01 = torch.as_tensor(self.state_q01, dtype=torch.float32, device=state.device)
        q99 = torch.as_tensor(self.state_q99, dtype=torch.float32, device=state.device)
        span = torch.where(q99 > q01, q99 - q01, torch.ones_like(q01))
        scaled = torch.where(q99 > q01, 2 * (state.float() - q01) / span - 1, torch.zeros_like(q01))
        return scaled.clamp(-STATE_CLIP, STATE_CLIP)

    def prompt(self, instructions: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), each (B, L), left-padded. Each distinct instruction is tokenized once:
        a policy asks for the same few on every call."""
        rows = [self._prompt_ids(text) for text in instructions]
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), self.text.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                ids[i, -len(row) :] = torch.as_tensor(row)
                mask[i, -len(row) :] = 1
        return ids.to(device), mask.to(device)

    def _prompt_ids(self, instruction: str) -> list[int]:
        if instruction not in self._prompts:
            if len(self._prompts) >= PROMPT_CACHE:  # a stream of distinct instructions stays bounded
                self._prompts.clear()
            text = self.config.prompt.format(instruction=instruction.strip().rstrip("."))
            self._prompts[instruction] = self.text(text, add_special_tokens=True)["input_ids"]
        return self._prompts[instruction]

    def action_targets(self, actions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) actions, (B, K) validity -> token ids (B, K*D) and the loss mask (B, K*D)."""
        k, d = self.config.chunk_size, self.config.action_dim
        if tuple(actions.shape[1:]) != (k, d):
            raise ValueError(
                f"action chunks have shape {tuple(actions.shape[1:])}, the model expects ({k}, {d})"
            )
        chunks = actions.detach().cpu().numpy()
        ids = np.stack([self.actions.encode(chunk) for chunk in chunks])
        loss_mask = mask.bool().repeat_interleave(d, dim=1)
        return torch.as_tensor(ids, device=actions.device), loss_mask.to(actions.device)

    def decode(self, token_ids: np.ndarray) -> np.ndarray:
        """(B, n*D) action token ids -> (B, n, D) float32 actions (n: the chunk's first n actions)."""
        d = self.config.action_dim
        return np.stack([self.actions.decode(row).reshape(-1, d) for row in token_ids])
