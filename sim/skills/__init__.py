"""Skills: short behaviours described in words, each with a reference executor (the scripted expert on the
skill's waypoints), a termination signal and a privileged affordance; the oracle decomposition of every
task into skills; per-frame skill labels of a demonstration. A planner (``policies.planning``) composes
them; this package imports nothing outside ``sim``.

    from sim import skills
    env = sim.make("PutAllInBin", cameras=()); env.reset(seed=0)
    task, world = env.unwrapped.task, env.unwrapped.world
    state = skills.observe(task, world)             # SceneState: held, in the bin, stacked, drawer
    skills.describe(state)                          # "holding: nothing. in the bin: nothing. on the table: ..."
    [s.text for s in skills.remaining(task, state)]  # ["pick up the red cube", "put the red cube in the bin", ...]
    library = skills.skill_library(task)            # every skill the scene allows
"""

from sim.skills.library import Skill, executor, skill_library
from sim.skills.oracle import next_options, remaining
from sim.skills.relabel import DONE, SkillLabeller
from sim.skills.scene import SceneState, describe, observe

__all__ = [
    "DONE",
    "SceneState",
    "Skill",
    "SkillLabeller",
    "describe",
    "executor",
    "next_options",
    "observe",
    "remaining",
    "skill_library",
]
