"""How a policy's action chunks become one action per control step, for one environment.

Two strategies (``make_executor``):

- ``receding`` (receding horizon, as in Diffusion Policy and LeRobot's ``n_action_steps``): execute the first
  ``n_action_steps`` actions of a chunk (all of it when the chunk is shorter), then ask the policy again.
  Steps 0..n-1 come from the chunk predicted at step 0, steps n..2n-1 from the one predicted at step n, ...
- ``ensemble`` (ACT's temporal ensembling, Zhao et al. 2023): ask the policy at every step; the action
  executed at step t averages every chunk that covers t: the chunk predicted at step s contributes its
  action t - s. Weights w_i = exp(-m * i), i = 0 for the oldest prediction, normalized to sum 1 (ACT uses
  m = 0.01: older predictions weigh slightly more, which smooths the motion).

An executor is driven as::

    executor.reset()                                   # at every episode's start
    if executor.needs_query():                         # before every step
        executor.add_chunk(policy_output["actions"])   # (K, D)
    action = executor.next_action()                    # (D,), then env.step(action)
"""

from __future__ import annotations

from collections import deque

import numpy as np

CHUNKING = ("receding", "ensemble")
ACT_ENSEMBLE_COEFF = 0.01  # m in ACT's w_i = exp(-m * i)


def _as_chunk(chunk) -> np.ndarray:
    chunk = np.asarray(chunk, dtype=np.float32)
    if chunk.ndim != 2 or chunk.shape[0] < 1:
        raise ValueError(f"an action chunk must have shape (K, D) with K >= 1, got {chunk.shape}")
    return chunk


class RecedingHorizon:
    """Execute the first ``n_action_steps`` actions of each chunk, then re-plan."""

    def __init__(self, n_action_steps: int):
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self.reset()

    def reset(self) -> None:
        self._queue: deque[np.ndarray] = deque()

    def needs_query(self) -> bool:
        return not self._queue

    def add_chunk(self, chunk) -> None:
        self._queue.extend(_as_chunk(chunk)[: self.n_action_steps])

    def next_action(self) -> np.ndarray:
        if not self._queue:
            raise RuntimeError("next_action() with no planned actions left: add_chunk() first")
        return self._queue.popleft()


class TemporalEnsemble:
    """ACT's temporal ensembling: a new chunk every step, the overlapping predictions averaged."""

    def __init__(self, coeff: float = ACT_ENSEMBLE_COEFF):
        if not np.isfinite(coeff):
            raise ValueError(f"the ensembling coefficient m must be finite, got {coeff}")
        self.coeff = coeff
        self.reset()

    def reset(self) -> None:
        self._step = 0
        self._chunks: list[tuple[int, np.ndarray]] = []  # (step it was predicted at, (K, D)), oldest first
        self._queried = False

    def needs_query(self) -> bool:
        return not self._queried

    def add_chunk(self, chunk) -> None:
        self._chunks.append((self._step, _as_chunk(chunk)))
        self._queried = True

    def weights(self, count: int) -> np.ndarray:
        """(count,) normalized weights of ``count`` predictions of one step, oldest first."""
        weights = np.exp(-self.coeff * np.arange(count))
        return weights / weights.sum()

    def next_action(self) -> np.ndarray:
        if not self._queried:
            raise RuntimeError("temporal ensembling needs a chunk at every step: add_chunk() first")
        t = self._step
        self._chunks = [(s, chunk) for s, chunk in self._chunks if s + len(chunk) > t]
        predictions = np.stack([chunk[t - s] for s, chunk in self._chunks])  # (N, D), oldest first
        self._step += 1
        self._queried = False
        return (self.weights(len(predictions))[:, None] * predictions).sum(0).astype(np.float32)


def make_executor(
    chunking: str, n_action_steps: int, coeff: float = ACT_ENSEMBLE_COEFF
) -> RecedingHorizon | TemporalEnsemble:
    """A fresh executor for one environment; ``n_action_steps`` is used by ``receding`` only."""
    if chunking == "receding":
        return RecedingHorizon(n_action_steps)
    if chunking == "ensemble":
        return TemporalEnsemble(coeff)
    raise ValueError(f"chunking must be one of {CHUNKING}, got {chunking!r}")
