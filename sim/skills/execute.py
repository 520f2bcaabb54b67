"""Run one skill on an environment with its reference executor until it terminates, finishes or is cut.

A skill ends at the first of: its termination signal fires (``done``: success), its executor has reached
the last waypoint of its plan without it firing (failure: the plan ran out, e.g. after the held object was
dropped), its step limit (failure: cut), or the episode's end (the task succeeded, which counts as the
skill's success, or the episode's own step limit). ``tamper`` (optional) may change each action before it is applied: fault injection.

The executor is the skill's reference (the scripted expert on its waypoints) unless ``make_executor`` gives
another: ``make_executor(env, skill)`` returns an object with ``infer(obs) -> {"actions": (K, D)}`` (the
first action is applied) and ``plan_complete() -> bool`` (a learned policy has no plan: always False).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.skills.library import Skill, executor

DONE, PLAN_ENDED, CUT, EPISODE_OVER = "done", "plan ended", "cut at its step limit", "episode over"


@dataclass
class SkillRun:
    skill: Skill
    success: bool  # the termination signal fired
    ending: str  # DONE, PLAN_ENDED, CUT or EPISODE_OVER
    steps: int
    obs: dict  # the last observation
    episode_over: bool  # terminated or truncated: no further step may be taken
    info: dict  # the last step's info (the episode's, when it is over)


def run_skill(
    env,
    skill: Skill,
    obs: dict,
    noise: float = 0.0,
    seed=None,
    tamper: Callable[[int, np.ndarray], np.ndarray] | None = None,
    make_executor: Callable | None = None,
    stop_on_signal: bool = True,
) -> SkillRun:
    """Execute ``skill`` from observation ``obs`` on ``env`` (an episode in progress). ``stop_on_signal``:
    the termination signal ends the skill; False: only the executor's own end (a learned termination, its
    ``plan_complete``), the step limit or the episode's end do, and the signal then judges success."""
    world = env.unwrapped.world
    expert = executor(env, skill, noise, seed) if make_executor is None else make_executor(env, skill)
    skill.begin(world)
    info: dict = {}
    for step in range(skill.max_steps):
        if stop_on_signal and skill.done(world):
            return SkillRun(skill, True, DONE, step, obs, False, info)
        if step > 0 and expert.plan_complete():
            success = skill.done(world)
            return SkillRun(skill, success, DONE if success else PLAN_ENDED, step, obs, False, info)
        action = expert.infer(obs)["actions"][0]
        if tamper is not None:
            action = tamper(step, action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            # The task succeeding ends the episode before the gripper has risen clear of a placed object:
            # the skill did its part then.
            success = skill.done(world) or bool(info.get("success"))
            return SkillRun(skill, success, EPISODE_OVER, step + 1, obs, True, info)
    success = skill.done(world)
    return SkillRun(skill, success, DONE if success else CUT, skill.max_steps, obs, False, info)
