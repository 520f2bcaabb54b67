"""Learned skills: a VLA trained on skill instructions executes each skill the planner chooses.

    skills = LearnedSkills(load_policy("runs/skills/train"))
    run_plan_episode(env, OraclePlanner(), seed, skills=skills)

A skill's executor asks the policy for an action with the skill's command as the observation's instruction
(``"pick up the red cube"``, ``"put it on the blue cube"``: ``sim.skills.Skill.command``), the words the
policy was trained on when its recording was relabelled (``policies.recording.relabel.write_skill_dataset``). The policy is reset at each skill's start and re-asked
every step (its first action is applied: ``chunk_size`` 1, or the first action of a chunk). The skill ends
as any skill does (``sim.skills.execute``): its termination signal, its step limit or the episode's end; a
learned policy has no plan that runs out.
"""

from __future__ import annotations

from sim.contract import OBS_INSTRUCTION


class LearnedSkills:
    """``make_executor`` for ``run_skill``: each skill executed by ``policy`` (``reset()``, ``infer(obs)``)."""

    def __init__(self, policy):
        self.policy = policy

    def __call__(self, env, skill) -> _SkillExecutor:
        self.policy.reset()
        return _SkillExecutor(self.policy, skill.command)


class _SkillExecutor:
    def __init__(self, policy, text: str):
        self.policy, self.text = policy, text

    def infer(self, obs: dict) -> dict:
        return self.policy.infer({**obs, OBS_INSTRUCTION: self.text})

    def plan_complete(self) -> bool:
        return False  # nothing but the termination signal, the step limit or the episode's end stops it
