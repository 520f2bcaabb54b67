"""Fault injection: the held object slips out of the gripper mid-carry.

With probability ``p`` per carry (each place skill: into the bin, onto an object or a target), the gripper
is forced open for ``OPEN_STEPS`` control steps at a step drawn in ``DROP_STEPS`` after the carry starts,
while the object is in the air on its way; then the skill's executor goes on as if nothing happened. The
draws come from the episode seed, so a run with feedback and the same plan run open loop meet the same
drops on their first carries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.contract import GRIPPER_OPEN
from sim.skills.library import PutInBin, PutOn, Skill

DROP_STEPS = (2, 5)  # the forced opening starts at one of these control steps of the carry (inclusive)
OPEN_STEPS = 8  # control steps the gripper is held open: long enough for the object to fall out
_STREAM = 0xFA17  # the fault draws' own random stream, apart from the simulator's


class DropFault:
    def __init__(self, p: float, seed: int):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"fault probability must be in [0, 1], got {p}")
        self.p = p
        self._rng = np.random.default_rng([seed, _STREAM])
        self.injected = 0  # carries the gripper was forced open on so far

    def tamper(self, skill: Skill) -> Callable[[int, np.ndarray], np.ndarray] | None:
        """The action filter for one run of ``skill``: a drop for this carry, or None (no fault)."""
        if not isinstance(skill, (PutInBin, PutOn)) or self.p == 0.0:
            return None
        drop = self._rng.random() < self.p
        start = int(self._rng.integers(DROP_STEPS[0], DROP_STEPS[1] + 1))
        if not drop:
            return None

        def open_gripper(step: int, action: np.ndarray) -> np.ndarray:
            self.injected += int(step == start)  # counted once the carry gets that far
            if start <= step < start + OPEN_STEPS:
                action = action.copy()
                action[6] = GRIPPER_OPEN
            return action

        return open_gripper
