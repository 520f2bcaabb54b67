"""The plan-execute loop: choose a skill, run it with its executor, tell the planner how it went, repeat.

With ``feedback`` (Inner Monologue) each step's line in the prompt holds the success detector's verdict
(the skill's termination signal) and the scene described from the simulator after it, and the affordances
come from the observed scene: a failed step is planned again. Without it (open loop) the planner is told
what it expected (success, the predicted scene) and plans on the predicted state, so it makes the same plan
it would make with feedback when nothing goes wrong, and runs it blind.

Every decision is checked against the oracle decomposition (``sim.skills.next_options``) on the scene as it
really is: that is the planning accuracy, apart from whether the skill then worked.

A planner has ``start(instruction, scene, task) -> episode``, ``decide(episode, candidates, affordances,
state) -> Decision`` and the episode's ``record(skill, success, scene)``: ``SayCanPlanner`` (the language
model) or ``OraclePlanner`` (the scripted decomposition).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.planning.faults import DropFault
from policies.planning.learned import SIGNAL
from policies.planning.planner import ungrounded
from policies.planning.prompt import DONE
from sim.skills import describe, next_options, observe, skill_library
from sim.skills.execute import run_skill

MAX_DECISIONS = 16  # per episode: twice the longest task's skills, with room for re-plans

# Why an episode ended (besides the task succeeding, which ends it at once).
PLANNER_DONE, DECISION_LIMIT, EPISODE_OVER = "planner said done", "decision limit", "episode over"
NOTHING_FEASIBLE = "no skill is feasible"


@dataclass
class DecisionRecord:
    skill: str  # the chosen skill's text, or DONE
    correct: bool  # one of the oracle's next skills on the real scene
    latency_s: float  # wall time of the choice
    cpu_s: float  # CPU time of the choice, all threads together
    success: bool | None = None  # the skill's termination signal fired (None: DONE, nothing ran)
    ending: str | None = None  # how the skill run ended (sim.skills.execute)
    steps: int = 0


@dataclass
class PlanEpisode:
    task: str
    seed: int
    instruction: str
    success: bool
    length: int  # control steps
    outcome: str  # "success", or why not: PLANNER_DONE, DECISION_LIMIT, EPISODE_OVER, "nothing to do: ..."
    decisions: list[DecisionRecord] = field(default_factory=list)
    replans: int = 0  # failed steps the planner planned again after (feedback only)
    drops: int = 0  # faults injected


def done_affordance(state) -> float:
    """Stopping is feasible with the gripper empty: no task here ends with an object in mid-air."""
    return float(state.held is None)


def run_plan_episode(
    env,
    planner,
    seed: int,
    feedback: bool = True,
    faults: DropFault | None = None,
    options: dict | None = None,
    instruction: str | None = None,
    max_decisions: int = MAX_DECISIONS,
    skills=None,
    narrate=None,
) -> PlanEpisode:
    """One episode of ``env`` (reset with ``seed`` and ``options``) under ``planner``. ``skills``: what
    executes each skill (``make_executor(env, skill)``, e.g. ``LearnedSkills``); None: the skills' reference
    executors. ``faults``: drops mid-carry (none by default). ``instruction``: what the planner is asked
    instead of the episode's own instruction (success is still the task's). ``narrate(line)``: told each
    decision as it is made (``"2. put the red cube in the bin"``), e.g. ``Filmed.narrate`` for captions."""
    obs, info = env.reset(seed=seed, options=options)
    task, world = env.unwrapped.task, env.unwrapped.world
    instruction = info["instruction"] if instruction is None else instruction
    library = {skill.text: skill for skill in skill_library(task)}
    episode = PlanEpisode(task.name, seed, instruction, False, 0, DECISION_LIMIT)
    reason = ungrounded(instruction, task.things())
    if reason is not None:
        episode.outcome = reason
        return episode
    state = observe(task, world)
    prompt = planner.start(instruction, describe(state), task)
    faults = faults if faults is not None else DropFault(0.0, seed)
    for _ in range(max_decisions):
        affordances = [float(s.feasible(state)) for s in library.values()] + [done_affordance(state)]
        if not any(affordances):
            episode.outcome = NOTHING_FEASIBLE
            break
        decision = planner.decide(prompt, [*library, DONE], affordances, state)
        right = {s.text for s in next_options(task, observe(task, world))}
        record = DecisionRecord(decision.text, decision.text in right, decision.latency_s, decision.cpu_s)
        episode.decisions.append(record)
        if narrate is not None:
            narrate(f"{len(episode.decisions)}. {decision.text}")
        if decision.text == DONE:
            episode.outcome = PLANNER_DONE
            break
        skill = library[decision.text]
        stop = skills is None or skills.termination == SIGNAL  # else the policy's own head ends a skill
        run = run_skill(
            env, skill, obs, tamper=faults.tamper(skill), make_executor=skills, stop_on_signal=stop
        )
        obs, episode.length = run.obs, episode.length + run.steps
        record.success, record.ending, record.steps = bool(run.success), run.ending, run.steps
        if feedback:
            state, success = observe(task, world), run.success
            episode.replans += int(not success and not run.episode_over)
        else:
            state, success = skill.effect(state), True
        prompt.record(skill.text, success, describe(state))
        if run.episode_over:
            info = run.info
            episode.outcome = EPISODE_OVER
            break
    episode.drops = faults.injected
    episode.success = bool(info["success"]) if episode.outcome == EPISODE_OVER else bool(task.success(world))
    if episode.success:
        episode.outcome = "success"
    return episode
