"""The success report of a set of rollouts: ``results.json`` (machine-readable) and ``report.md`` (a table).

``results.json``::

    {
        "tasks": {name: {"success_rate", "successes", "episodes", "ci95", "mean_length",
                         "failed_seeds", "example_instruction", "video"}},
        "mean_success": float,   # the unweighted mean of the tasks' success rates
        "mean_ci95": [low, high],  # Wilson 95% interval on all episodes pooled
        "protocol": {...},       # everything needed to reproduce the numbers (seeds, limits, render, versions)
    }

``report.md`` is rendered from that document alone, so the two never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from policies.rollout import EpisodeResult
from policies.seeds import rate_with_interval, wilson_interval


def task_summary(results: Sequence[EpisodeResult], video: str | None) -> dict:
    """One task's entry in ``results.json``; ``video`` is the clip's path relative to the report."""
    if not results:
        raise ValueError("task_summary needs at least one episode")
    successes = sum(bool(r.success) for r in results)
    return {
        "success_rate": successes / len(results),
        "successes": successes,
        "episodes": len(results),
        "ci95": list(wilson_interval(successes, len(results))),
        "mean_length": sum(r.length for r in results) / len(results),
        "failed_seeds": [r.seed for r in results if not r.success],
        "example_instruction": results[0].instruction,
        "video": video,
    }


def summary_document(tasks: dict[str, dict]) -> dict:
    """``tasks``, ``mean_success`` and ``mean_ci95``. The mean's interval pools every episode: with the same
    number of episodes per task (as every report here runs them) the pooled rate is the mean of the tasks'
    rates."""
    rates = [entry["success_rate"] for entry in tasks.values()]
    successes = sum(entry["successes"] for entry in tasks.values())
    episodes = sum(entry["episodes"] for entry in tasks.values())
    return {
        "tasks": tasks,
        "mean_success": sum(rates) / len(rates),
        "mean_ci95": list(wilson_interval(successes, episodes)),
    }


def results_document(tasks: dict[str, dict], protocol: dict) -> dict:
    return {**summary_document(tasks), "protocol": protocol}


def markdown_table(document: dict) -> str:
    rows = [
        "| task | success [95% CI] | episodes | mean length | example instruction | video |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, entry in document["tasks"].items():
        video = f"[mp4]({entry['video']})" if entry["video"] else "-"
        rate = rate_with_interval(entry["success_rate"], entry["ci95"])
        rows.append(
            f"| {name} | {rate} ({entry['successes']}/{entry['episodes']}) | {entry['episodes']} "
            f"| {entry['mean_length']:.1f} | {entry['example_instruction']} | {video} |"
        )
    mean = rate_with_interval(document["mean_success"], document["mean_ci95"])
    rows.append(f"| **mean** | **{mean}** | | | | |")
    return "\n".join(rows)


def report_markdown(document: dict) -> str:
    protocol = document["protocol"]
    versions = ", ".join(f"{name} {version}" for name, version in protocol["versions"].items())
    return (
        "# Scripted-expert success report\n\n"
        f"{markdown_table(document)}\n\n"
        f"Episode i of a task uses seed {protocol['seed']} + i; expert action noise {protocol['noise']}; "
        f"control at {protocol['control_hz']} Hz; step limits {protocol['max_steps']}; {versions}. "
        "Full protocol in `results.json`.\n"
    )


def write_report(out: str | Path, document: dict, markdown: str | None = None) -> tuple[Path, Path]:
    """Write ``results.json`` and ``report.md`` (``markdown``, by default the expert report) under ``out``;
    return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path, report_path = out / "results.json", out / "report.md"
    results_path.write_text(json.dumps(document, indent=2) + "\n")
    report_path.write_text(report_markdown(document) if markdown is None else markdown)
    return results_path, report_path
