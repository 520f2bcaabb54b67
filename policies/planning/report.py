"""The planner's results: each task's entry (``policies.reports.results``'s, with the planner's metrics) and
``report.md``.

A task's entry adds to ``task_summary``'s keys::

    "planning_accuracy": float,        # decisions that were one of the oracle's next skills, of all decisions
    "plans_as_oracle": float,          # episodes whose every decision was
    "decisions_per_episode", "replans_per_episode", "drops_per_episode": float,
    "latency_s": {"mean", "p50", "p95", "max"},   # wall time per decision
    "cpu_s": {"mean", "max"},                     # CPU time per decision, all threads together
    "outcomes": {outcome: episodes},
    "skills": {verb: {"runs", "successes"}},  # the skills run, by their text's verb ("pick up", "put", ...)
    "episode_results": [{"seed", "instruction", "success", "outcome", "length", "replans", "drops",
                         "steps": [[skill, correct, success, ending], ...]}],
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from policies.planning.loop import PlanEpisode
from policies.reports.results import rate_with_interval, task_summary
from policies.rollout import EpisodeResult


def task_entry(episodes: list[PlanEpisode], video: str | None = None) -> dict:
    results = [EpisodeResult(e.task, e.seed, e.instruction, e.success, e.length) for e in episodes]
    decisions = [d for e in episodes for d in e.decisions]
    latency = np.array([d.latency_s for d in decisions]) if decisions else np.zeros(1)
    cpu = np.array([d.cpu_s for d in decisions]) if decisions else np.zeros(1)
    return {
        **task_summary(results, video),
        "planning_accuracy": sum(d.correct for d in decisions) / max(len(decisions), 1),
        "plans_as_oracle": float(np.mean([all(d.correct for d in e.decisions) for e in episodes])),
        "decisions_per_episode": len(decisions) / len(episodes),
        "replans_per_episode": float(np.mean([e.replans for e in episodes])),
        "drops_per_episode": float(np.mean([e.drops for e in episodes])),
        "latency_s": {
            "mean": float(latency.mean()),
            "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
            "max": float(latency.max()),
        },
        "cpu_s": {"mean": float(cpu.mean()), "max": float(cpu.max())},
        "outcomes": dict(Counter(e.outcome for e in episodes)),
        "skills": _skill_runs(decisions),
        "episode_results": [_episode(e) for e in episodes],
    }


def _skill_runs(decisions) -> dict:
    """Runs and successes per kind of skill, named by the verb its text starts with."""
    runs: dict[str, dict[str, int]] = {}
    for d in decisions:
        if d.success is None:  # DONE: nothing ran
            continue
        verb = runs.setdefault(d.skill.split(" the ")[0], {"runs": 0, "successes": 0})
        verb["runs"] += 1
        verb["successes"] += int(d.success)
    return runs


def _episode(e: PlanEpisode) -> dict:
    return {
        "seed": e.seed,
        "instruction": e.instruction,
        "success": e.success,
        "outcome": e.outcome,
        "length": e.length,
        "replans": e.replans,
        "drops": e.drops,
        "steps": [[d.skill, d.correct, d.success, d.ending] for d in e.decisions],
    }


def report_markdown(document: dict) -> str:
    protocol = document["protocol"]
    open_loop = document.get("open_loop", {}).get("tasks", {})
    rows = [
        "| task | success [95% CI] | planning accuracy | plans as oracle | re-plans / episode | drops / episode "
        "| decision latency mean / p95 (s) | skills that succeeded | open loop success |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, entry in document["tasks"].items():
        rate = rate_with_interval(entry["success_rate"], entry["ci95"])
        other = open_loop.get(name)
        loop = rate_with_interval(other["success_rate"], other["ci95"]) if other else "-"
        skills = ", ".join(
            f"{verb} {n['successes']}/{n['runs']}" for verb, n in entry.get("skills", {}).items()
        )
        title = f"[{name}]({entry['video']})" if entry.get("video") else name
        rows.append(
            f"| {title} | {rate} ({entry['successes']}/{entry['episodes']}) | {entry['planning_accuracy']:.0%} "
            f"| {entry['plans_as_oracle']:.0%} | {entry['replans_per_episode']:.2f} | "
            f"{entry['drops_per_episode']:.2f} | {entry['latency_s']['mean']:.2f} / {entry['latency_s']['p95']:.2f} "
            f"| {skills} | {loop} |"
        )
    mode = "with feedback" if True in protocol["feedback"] else "open loop"
    return (
        f"# Planner report: {protocol['planner']} ({protocol['language_model'] or 'no language model'})\n\n"
        + "\n".join(rows)
        + f"\n\nSuccess {mode}; instruction {protocol['instruction']}; fault probability per carry "
        f"{protocol['fault_p']}; seeds {protocol['seeds'][0]}-{protocol['seeds'][1]} ({protocol['split']}); "
        f"affordance and success detector {protocol['affordance'].split(':')[0]}. Full protocol in "
        "`results.json`.\n"
    )
