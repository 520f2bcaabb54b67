"""Discretize continuous action chunks into LLM tokens and back. Pure numpy, so torch-free code can import it too.

Contract:
- Normalize: each action dimension d maps [q01[d], q99[d]] of the dataset linearly onto [-1, 1]; values
  outside are clipped. A dimension with q01 == q99 (constant in the data) maps to 0.
- Bin: [-1, 1] is cut into ``num_bins`` equal bins; bin b covers [-1 + b w, -1 + (b + 1) w), w = 2 / num_bins,
  and 1.0 falls in the last bin.
- A chunk (K, D) becomes K * D tokens, row by row (step 0's D dims, then step 1's, ...); token = token_ids[bin].
- Decode maps each token back to its bin's centre and un-normalizes with the same q01/q99, so
  |decode(encode(a)) - a| <= w / 2 * (q99 - q01) / 2 per dimension, for a inside [q01, q99].
- Decoding raises ``ValueError`` for a token that is not an action token or a sequence whose length is not a
  multiple of D: never zeros, never a guess.
"""

from __future__ import annotations

import numpy as np


class ActionTokenizer:
    def __init__(self, q01, q99, token_ids, num_bins: int = 256):
        self.q01 = np.asarray(q01, dtype=np.float64)  # (D,)
        self.q99 = np.asarray(q99, dtype=np.float64)  # (D,)
        self.token_ids = np.asarray(token_ids, dtype=np.int64)  # (num_bins,): the LLM ids of bins 0..n-1
        self.num_bins = int(num_bins)
        if self.q01.ndim != 1 or self.q01.shape != self.q99.shape:
            raise ValueError(
                f"q01 and q99 must be vectors of one length, got {self.q01.shape}, {self.q99.shape}"
            )
        if not (np.isfinite(self.q01).all() and np.isfinite(self.q99).all()):
            raise ValueError("q01 and q99 must be finite")
        if np.any(self.q99 < self.q01):
            raise ValueError(f"q99 must be >= q01 in every dimension, got q01={self.q01}, q99={self.q99}")
        if self.token_ids.shape != (self.num_bins,) or len(set(self.token_ids.tolist())) != self.num_bins:
            raise ValueError(
                f"token_ids must be {self.num_bins} distinct ids, got shape {self.token_ids.shape}"
            )
        self._bin_of_id = {int(t): b for b, t in enumerate(self.token_ids)}

    @property
    def action_dim(self) -> int:
        return len(self.q01)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """(..., D) actions -> [-1, 1], clipped."""
        span = self.q99 - self.q01
        safe = np.where(span > 0, span, 1.0)
        scaled = np.where(span > 0, 2.0 * (actions - self.q01) / safe - 1.0, 0.0)
        return np.clip(scaled, -1.0, 1.0)

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        return (normalized + 1.0) / 2.0 * (self.q99 - self.q01) + self.q01

    def encode(self, actions) -> np.ndarray:
        """(K, D) actions -> (K * D,) token ids."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise ValueError(f"actions must have shape (K, {self.action_dim}), got {actions.shape}")
        if not np.isfinite(actions).all():
            raise ValueError("actions contain NaN or inf")
        bins = np.floor((self.normalize(actions) + 1.0) / 2.0 * self.num_bins).astype(np.int64)
        return self.token_ids[np.clip(bins, 0, self.num_bins - 1)].reshape(-1)

    def decode(self, token_ids) -> np.ndarray:
        """(K * D,) token ids -> (K, D) float32 actions at the bin centres, un-normalized."""
        ids = np.asarray(token_ids).reshape(-1)
        if ids.size == 0 or ids.size % self.action_dim:
            raise ValueError(f"{ids.size} tokens are not a whole number of {self.action_dim}-D actions")
        try:
            bins = np.array([self._bin_of_id[int(t)] for t in ids])
        except KeyError as missing:
            raise ValueError(f"token id {missing.args[0]} is not an action token") from None
        centres = (bins + 0.5) / self.num_bins * 2.0 - 1.0
        return self.unnormalize(centres.reshape(-1, self.action_dim)).astype(np.float32)
