"""Learned skills: a VLA trained on skill instructions executes each skill the planner chooses.

    skills = LearnedSkills(load_policy("runs/skills/train"))
    run_plan_episode(env, OraclePlanner(), seed, skills=skills)

A skill's executor asks the policy for an action with the skill's text as the observation's instruction
(``"pick up the red cube"``), the words the policy was trained on when its recording was relabelled
(``policies.recording.relabel.write_skill_dataset``). The policy is reset at each skill's start and re-asked
every step (its first action is applied: ``chunk_size`` 1, or the first action of a chunk). The skill ends
at its termination signal (privileged), or, with ``termination="learned"``, when the policy's termination
head says it is done (the signal then only judges whether it worked: the success detector); or at its step
limit or the episode's end.
"""

from __future__ import annotations

from policies.base import DONE
from sim.contract import OBS_INSTRUCTION

SIGNAL, LEARNED = "signal", "learned"
TERMINATIONS = (SIGNAL, LEARNED)


class LearnedSkills:
    """``make_executor`` for ``run_skill``: each skill executed by ``policy`` (``reset()``, ``infer(obs)``).

    ``termination``: ``"signal"``, the skill's termination signal on the simulator's state ends it
    (privileged); ``"learned"``, the policy's own termination head does (its output's ``"done"``
    probability above ``threshold`` after a step: a checkpoint trained with ``model.done_loss``)."""

    def __init__(self, policy, termination: str = SIGNAL, threshold: float = 0.5):
        if termination not in TERMINATIONS:
            raise ValueError(f"termination must be one of {TERMINATIONS}, got {termination!r}")
        self.policy, self.termination, self.threshold = policy, termination, threshold

    def __call__(self, env, skill) -> _SkillExecutor:
        self.policy.reset()
        return _SkillExecutor(self, skill.text)


class _SkillExecutor:
    def __init__(self, skills: LearnedSkills, text: str):
        self.skills, self.text, self.done = skills, text, False

    def infer(self, obs: dict) -> dict:
        out = self.skills.policy.infer({**obs, OBS_INSTRUCTION: self.text})
        if self.skills.termination == LEARNED:
            if DONE not in out:
                raise ValueError(
                    "termination=learned needs a policy that says when a skill is done (its output's "
                    f"'{DONE}': a checkpoint trained with model.done_loss > 0); this one answers {sorted(out)}"
                )
            self.done = float(out[DONE]) > self.skills.threshold
        return out

    def plan_complete(self) -> bool:
        return self.done  # the learned termination after the step just taken (never, with the signal)
