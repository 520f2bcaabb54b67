"""Does the policy read its instruction? ``vla-eval instruction=[normal,swap,blank,heldout,wordings]``.

On the language tasks (``sim.language_tasks()``) the instruction picks the goal among the scene's
alternatives, so a policy that ignores it succeeds only by chance. Each mode runs the same seeds (the same
scenes) with another instruction:

- ``normal``: the instruction the seed draws (``vla-eval``'s default);
- ``swap``: the instruction names another goal of the same scene, drawn from the seed alone (an rng seeded
  with ``[seed, crc32("swap")]`` picks among the goals other than the drawn one); success is judged on the
  named goal, so a policy that ignores the instruction mostly fails;
- ``blank``: the policy is given ``""``; success is judged on the drawn goal, whose chance level is
  ``1 / number of goals`` (one for the drawers, which need no instruction);
- ``heldout``: the instruction uses the task's held-out template (``sim.holdout_templates``: by default
  the last, the one ``vla-record holdout_templates=last`` never recorded);
- ``wordings``: the policy reads the drawn goal in one of the task's held-out wordings
  (``Task.unseen_wordings``: new verbs, elliptic references, other orders; never drawn by any reset), drawn
  from the seed alone (an rng seeded with ``[seed, crc32("wordings")]``); success is judged on the drawn
  goal, and the results count each wording's successes.

The environment side (``EvalEnv``) resets with ``reset_episode``; ``evaluate`` runs the modes and files
their results under ``results["instruction_modes"][mode]`` (docs/evaluation.md);
``evaluate.evaluate_instruction_following`` is the apps' way to ask for them. Module-level imports stay
free of torch, as for ``policies.evaluation.evaluate``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

import sim
from policies.reports.results import rate_with_interval, summary_document
from sim.contract import OBS_INSTRUCTION

NORMAL, SWAP, BLANK, HELDOUT, WORDINGS = "normal", "swap", "blank", "heldout", "wordings"
MODES = (NORMAL, SWAP, BLANK, HELDOUT, WORDINGS)
# Modes that only make sense where the instruction picks the goal.
NEEDS_ALTERNATIVES = (SWAP, HELDOUT, WORDINGS)
# Facts an episode of a mode other than normal adds to its entry in results.json.
POLICY_INSTRUCTION = "policy_instruction"  # what the policy read, every step ("" for blank)
ORIGINAL_INSTRUCTION = "original_instruction"  # what the seed's plain reset says (differs for swap, heldout)
NUM_GOALS = "num_goals"  # the scene's goals: blank's chance level is 1 / num_goals
WORDING = "wording"  # wordings only: the held-out wording (unformatted) the policy's instruction came from
EPISODE_KEYS = (POLICY_INSTRUCTION, ORIGINAL_INSTRUCTION, NUM_GOALS, WORDING)


def resolve_modes(spec: Any) -> list[str]:
    """``"swap"`` or ``["normal", "swap", ...]`` -> the modes in order, each once; else ``ValueError``."""
    modes = [spec] if isinstance(spec, str) else list(spec or [])
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown instruction modes {unknown or modes}; valid modes: {list(MODES)}")
    return list(dict.fromkeys(modes))


def check_modes(modes: Sequence[str], tasks: Sequence[str]) -> None:
    """``swap``, ``heldout`` and ``wordings`` need tasks whose instruction picks among alternatives: not the
    drawers; ``wordings`` also needs each task's held-out wordings."""
    language = sim.language_tasks()
    for mode in modes:
        for task in tasks:
            if mode in NEEDS_ALTERNATIVES and task not in language:
                raise ValueError(
                    f"instruction={mode} needs a task whose instruction picks the goal among alternatives; "
                    f"{task} has a single goal ([{{}}], its scene decides), so it has no other goal to "
                    f"name, no held-out template and no held-out wording. Tasks with alternatives: "
                    f"{language} (blank works on every task)"
                )
            if mode == WORDINGS and not sim.TASKS[task].unseen_wordings:
                raise ValueError(
                    f"instruction=wordings needs held-out wordings; {task} has none (Task.unseen_wordings)"
                )


def heldout_templates(modes: Sequence[str], tasks: Sequence[str], spec: Any) -> dict[str, str]:
    """The held-out template of each of ``tasks`` when ``heldout`` is among ``modes``, else ``{}``."""
    if HELDOUT not in modes:
        return {}
    held = sim.holdout_templates(spec)
    if not held:
        raise ValueError("instruction=heldout needs holdout_templates: last, or a mapping task -> template")
    return {task: held[task] for task in tasks}


def top_level_mode(modes: Sequence[str]) -> str:
    """The mode whose results stay at the results document's top level: normal when run, else the first."""
    return NORMAL if NORMAL in modes else modes[0]


def swap_goal(seed: int, goals: list[dict], current: dict) -> dict:
    """Another goal of the scene than ``current``, drawn from ``seed`` alone (reproducible, no shared rng)."""
    others = [goal for goal in goals if goal != current]
    if not others:
        raise ValueError(f"no goal to swap to: the scene's only goal is {current}")
    return others[int(np.random.default_rng([seed, zlib.crc32(SWAP.encode())]).integers(len(others)))]


def draw_wording(seed: int, wordings: Sequence[str]) -> str:
    """One of ``wordings``, drawn from ``seed`` alone (reproducible, independent of swap's draw)."""
    if not wordings:
        raise ValueError("no held-out wording to draw from")
    return wordings[int(np.random.default_rng([seed, zlib.crc32(WORDINGS.encode())]).integers(len(wordings)))]


def reset_episode(env, seed: int | None, mode: str, template: str | None = None) -> tuple[dict, dict]:
    """``env.reset(seed=seed)`` as ``mode`` has it; the mode's facts are added to ``info`` (not for normal).

    ``info["instruction"]`` always names the goal success is judged on; ``info["policy_instruction"]`` is
    what the policy reads (``""`` for blank, the formatted wording for wordings), and what
    ``policy_view`` puts in every observation of the episode."""
    if mode == NORMAL:
        return env.reset(seed=seed)
    task = env.unwrapped.task
    obs, info = env.reset(seed=seed)
    original, extra = info["instruction"], {}
    if mode == SWAP:
        obs, info = env.reset(seed=seed, options={"goal": swap_goal(seed, task.goals(), task.goal)})
    elif mode == HELDOUT:
        obs, info = env.reset(seed=seed, options={"template": template})
    reads = obs[OBS_INSTRUCTION]
    if mode == BLANK:
        reads = ""
    elif mode == WORDINGS:
        extra[WORDING] = draw_wording(seed, task.unseen_wordings)
        reads = extra[WORDING].format(**task.goal)  # the drawn goal, in other words
    extra = {POLICY_INSTRUCTION: reads, ORIGINAL_INSTRUCTION: original, NUM_GOALS: len(task.goals()), **extra}
    return policy_view(obs, reads), {**info, **extra}


def policy_view(obs: dict, reads: str | None) -> dict:
    """The observation as the policy reads it: its instruction replaced by ``reads`` (None: unchanged)."""
    return obs if reads is None else {**obs, OBS_INSTRUCTION: reads}


@contextmanager
def blank_instructions_allowed(policy):
    """While ``blank`` runs: a policy that refuses an empty instruction by default (``VLAPolicy``, whose
    ``allow_blank_instruction`` protects the server from clients that forgot it) accepts it."""
    inner = policy
    while "policy" in getattr(inner, "__dict__", {}):
        # Through wrappers (EncodedFrames, whose attribute reads reach the wrapped policy but whose
        # writes would stay on the wrapper) to the policy that checks.
        inner = inner.__dict__["policy"]
    if not hasattr(inner, "allow_blank_instruction"):
        yield
        return
    before = inner.allow_blank_instruction
    inner.allow_blank_instruction = True
    try:
        yield
    finally:
        inner.allow_blank_instruction = before


# -- the results ------------------------------------------------------------------------------------------
def mode_document(mode: str, tasks: dict[str, dict]) -> dict:
    """One mode's results: the task entries, their mean and its interval; blank adds the chance levels,
    wordings each task's results per wording."""
    document = summary_document(tasks)
    if mode == BLANK:
        for entry in tasks.values():
            goals = [episode[NUM_GOALS] for episode in entry["episode_results"]]
            entry["chance"] = float(np.mean([1 / n for n in goals]))
        document["mean_chance"] = float(np.mean([entry["chance"] for entry in tasks.values()]))
    if mode == WORDINGS:
        for task, entry in tasks.items():
            entry["wordings"] = per_wording(sim.TASKS[task].unseen_wordings, entry["episode_results"])
    return document


def per_wording(wordings: Sequence[str], episodes: list[dict]) -> dict[str, dict]:
    """``{wording: {"episodes", "successes", "success_rate"}}`` for each of ``wordings`` in order;
    ``success_rate`` None for a wording no seed drew."""
    counts = {}
    for wording in wordings:
        drawn = [episode["success"] for episode in episodes if episode[WORDING] == wording]
        rate = sum(drawn) / len(drawn) if drawn else None
        counts[wording] = {"episodes": len(drawn), "successes": sum(drawn), "success_rate": rate}
    return counts


def instruction_protocol(modes: Sequence[str], templates: dict[str, str], documents: dict) -> dict:
    """``protocol["instruction"]``: the modes, which one the top level holds, held-out templates, chance,
    the held-out wordings."""
    protocol = {"modes": list(modes), "top_level": top_level_mode(modes)}
    if SWAP in modes:
        protocol["swap"] = 'another goal of the scene, drawn by default_rng([seed, crc32("swap")])'
    if HELDOUT in modes:
        protocol["heldout_templates"] = dict(templates)
    if BLANK in modes:
        protocol["chance"] = {task: entry["chance"] for task, entry in documents[BLANK]["tasks"].items()}
    if WORDINGS in modes:
        protocol["wordings_draw"] = (
            'the drawn goal in a wording drawn by default_rng([seed, crc32("wordings")])'
        )
        tasks = documents[WORDINGS]["tasks"]
        protocol["wordings"] = {task: list(sim.TASKS[task].unseen_wordings) for task in tasks}
    return protocol


def instruction_markdown(document: dict) -> str:
    """The report's instruction-following table (a column per mode), or ``""`` for a normal-only run."""
    modes = document.get("instruction_modes")
    if not modes:
        return ""
    names = list(modes)
    rows = [f"| task | {' | '.join(names)} |", "|---|" + "---:|" * len(names)]
    for task in next(iter(modes.values()))["tasks"]:
        cells = [_cell(modes[mode]["tasks"][task], mode) for mode in names]
        rows.append(f"| {task} | {' | '.join(cells)} |")
    means = []
    for mode in names:
        mean = f"**{rate_with_interval(modes[mode]['mean_success'], modes[mode]['mean_ci95'])}**"
        means.append(f"{mean} (chance {modes[mode]['mean_chance']:.0%})" if mode == BLANK else mean)
    rows.append(f"| **mean** | {' | '.join(means)} |")
    return (
        "## Instruction following\n\n" + "\n".join(rows) + "\n\nThe same seeds (scenes) in every mode. "
        "swap: the instruction names another goal of the scene, success judged on it; blank: the policy "
        "reads an empty instruction, success judged on the drawn goal (chance: 1 / the scene's goals); "
        "heldout: the task's held-out template (`protocol.instruction.heldout_templates`); wordings: the "
        "drawn goal in one of the task's held-out wordings (`protocol.instruction.wordings`), success judged "
        "on it. Success with its Wilson 95% interval.\n" + wordings_markdown(document)
    )


def wordings_markdown(document: dict) -> str:
    """Success per held-out wording (``wordings`` mode), or ``""`` when it did not run."""
    results = document["instruction_modes"].get(WORDINGS)
    if results is None:
        return ""
    rows = ["| task | wording | success |", "|---|---|---:|"]
    for task, entry in results["tasks"].items():
        for wording, counts in entry["wordings"].items():
            rate = "-" if counts["success_rate"] is None else f"{counts['success_rate']:.0%}"
            rows.append(f"| {task} | {wording} | {rate} ({counts['successes']}/{counts['episodes']}) |")
    return "\n**Success per held-out wording** (few episodes each):\n\n" + "\n".join(rows) + "\n"


def _cell(entry: dict, mode: str) -> str:
    cell = f"{rate_with_interval(entry['success_rate'], entry['ci95'])} ({entry['successes']}/{entry['episodes']})"
    return f"{cell} (chance {entry['chance']:.0%})" if mode == BLANK else cell
