"""Skill labels for the frames of a demonstration: which skill the expert is executing at each frame.

Every frame gets the sub-instruction of the skill under way (``"pick up the red cube"``), so a task's
demonstration becomes demonstrations of its skills: the pick phase of PickUp, PlaceInBin, PlaceOnTarget
and Stack is one skill learned from all four. The skills are the oracle decomposition of the episode's
first frame; the label moves on to the next skill at the frame where the current one's termination signal
fires, and reads ``DONE`` once the last has.
"""

from __future__ import annotations

from sim.skills.library import Skill
from sim.skills.oracle import remaining
from sim.skills.scene import observe

DONE = "done"  # the label of frames after the last skill terminated


class SkillLabeller:
    """``label()`` once per frame, on the frame's simulator state before its action is applied."""

    def __init__(self, env):
        self.env = env.unwrapped
        self.reset()

    def reset(self) -> None:
        self._skills: list[Skill] | None = None
        self._index = 0

    def label(self) -> str:
        world, task = self.env.world, self.env.task
        if self._skills is None:
            self._skills = remaining(task, observe(task, world))
            if self._skills:
                self._skills[0].begin(world)
        while self._index < len(self._skills) and self._skills[self._index].done(world):
            self._index += 1
            if self._index < len(self._skills):
                self._skills[self._index].begin(world)
        return self._skills[self._index].text if self._index < len(self._skills) else DONE
