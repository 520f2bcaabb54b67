"""Which action plays at which control tick when chunks arrive late, and the policy call that makes them.

The control loop runs in ticks: tick j of an episode is due at ``t0 + j * dt``. An observation taken for tick
s (right after tick s - 1's command was sent) is stamped with tick s's time; action i of the chunk computed
from it is for ``t_obs + i * dt``, tick s + i. The chunk arrives some ticks later, at tick j: its actions for
ticks s .. j - 1 have had their time while the request was in flight, so they are dropped, never replayed
(Diffusion Policy's latency-aware execution). From tick j on, the newest chunk is the one that plays.

``InferenceRequest`` runs one ``policy.infer`` in a daemon thread, so the loop keeps its rate while the policy
thinks, and a policy that never answers cannot keep the process from exiting.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from policies.rollout import action_chunk


@dataclass(frozen=True)
class Planned:
    action: np.ndarray  # (D,) the proposed action for this tick, before the safety layer
    chunk: int  # which chunk (0, 1, ... in the order they took effect this episode)
    index: int  # its index in the chunk


class ChunkSchedule:
    """The newest chunk and the tick its action 0 is for; hands out each tick's action once."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._chunk: np.ndarray | None = None  # (K, D)
        self.start = 0  # the tick of the current chunk's action 0
        self.chunk_id = -1  # the current chunk's number, counted from 0 each episode
        self._next_tick = 0  # ticks before it have been played (by an action or a hold)

    def add(self, chunk, start_tick: int) -> int:
        """Make ``chunk`` (K, D), computed for ``start_tick``, the one that plays; return how many of its
        actions are dropped because their tick has passed. A chunk older than the current one is dropped
        whole: the robot already acts on something newer."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or len(chunk) < 1:
            raise ValueError(f"an action chunk must have shape (K, D) with K >= 1, got {chunk.shape}")
        if self._chunk is not None and start_tick < self.start:
            return len(chunk)
        dropped = int(np.clip(self._next_tick - start_tick, 0, len(chunk)))
        self._chunk, self.start = chunk, int(start_tick)
        self.chunk_id += 1
        return dropped

    def action_at(self, tick: int) -> Planned | None:
        """The action for ``tick``, or None when no chunk covers it (the loop holds the robot then).
        Ticks must increase: a tick is played once, so an action is never replayed."""
        if tick < self._next_tick:
            raise ValueError(f"tick {tick} was already played (the next is {self._next_tick})")
        self._next_tick = tick + 1
        index = tick - self.start
        if self._chunk is None or not 0 <= index < len(self._chunk):
            return None
        return Planned(self._chunk[index], self.chunk_id, index)

    def remaining(self, tick: int) -> int:
        """Actions of the current chunk for ``tick`` and later."""
        if self._chunk is None:
            return 0
        return int(np.clip(self.start + len(self._chunk) - tick, 0, len(self._chunk)))


class InferenceRequest:
    """One ``policy.infer(obs)`` for the chunk that starts at ``start_tick``, in a worker thread."""

    def __init__(self, policy, obs: dict, start_tick: int, clock=time.monotonic):
        self.start_tick = start_tick
        self.latency_s: float | None = None  # from the request to the answer
        self._clock = clock
        self._sent = clock()
        self._chunk: np.ndarray | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(policy, obs), name="policy-inference", daemon=True).start()

    def _run(self, policy, obs: dict) -> None:
        try:
            self._chunk = np.asarray(action_chunk(policy.infer(obs)), dtype=np.float64)
        except BaseException as error:  # handed to the loop, which stops the robot and reports it
            self._error = error
        finally:
            self.latency_s = self._clock() - self._sent
            self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def chunk(self) -> np.ndarray:
        """The (K, 7) chunk; the policy's exception, re-raised, if it failed."""
        if not self.finished:
            raise RuntimeError("the inference request has not finished")
        if self._error is not None:
            raise PolicyFailed(f"the policy failed: {type(self._error).__name__}: {self._error}") from (
                self._error
            )
        return self._chunk


class PolicyFailed(RuntimeError):
    """``policy.infer`` raised, or answered something that is not an action chunk."""
