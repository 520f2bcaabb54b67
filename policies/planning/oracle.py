"""The oracle planner: the scripted decomposition (``sim.skills.remaining``) in the planner's place.

It reads the task's goal and the scene's state directly (privileged), so it never makes a planning error;
run beside the language-model planner on the same seeds it separates planning errors from execution
errors, and under fault injection it shows what feedback alone recovers. It has the planner's interface
(``start``, ``decide``, the episode's ``record``) and takes no time to speak of.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from policies.planning.planner import Decision
from policies.planning.prompt import DONE
from sim.skills import remaining


class OraclePlanner:
    def start(self, instruction: str, scene: str, task=None) -> _Episode:
        if task is None:
            raise ValueError("the oracle planner needs the task (its goal) to plan")
        return _Episode(task)

    def decide(
        self, episode: _Episode, candidates: Sequence[str], affordances: Sequence[float], state=None
    ) -> Decision:
        """The first skill the oracle leaves to do from ``state`` (what the loop believes), if feasible."""
        started, cpu = time.perf_counter(), time.process_time()
        steps = remaining(episode.task, state)
        feasible = {c for c, a in zip(candidates, affordances, strict=True) if a > 0}
        choice = steps[0].text if steps and steps[0].text in feasible else DONE
        return Decision(choice, {choice: 0.0}, time.perf_counter() - started, time.process_time() - cpu)


class _Episode:
    def __init__(self, task):
        self.task = task

    def record(self, skill: str, success: bool, scene: str) -> None:
        pass  # the oracle plans from the state alone
