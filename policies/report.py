"""The success report of a set of rollouts: ``results.json`` (machine-readable) and ``report.md`` (a table).

``results.json``::

    {
        "tasks": {name: {"success_rate", "episodes", "mean_length",
                         "failed_seeds", "example_instruction", "video"}},
        "mean_success": float,   # the unweighted mean of the tasks' success rates
        "protocol": {...},       # everything needed to reproduce the numbers (seeds, limits, render, versions)
    }

``report.md`` is rendered from that document alone, so the two never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from policies.rollout import EpisodeResult


def task_summary(results: Sequence[EpisodeResult], video: str | None) -> dict:
    """One task's entry in ``results.json``; ``video`` is the clip's path relative to the report."""
    if not results:
        raise ValueError("task_summary needs at least one episode")
    return {
        "success_rate": sum(r.success for r in results) / len(results),
        "episodes": len(results),
        "mean_length": sum(r.length for r in results) / len(results),
        "failed_seeds": [r.seed for r in results if not r.success],
        "example_instruction": results[0].instruction,
        "video": video,
    }


def results_document(tasks: dict[str, dict], protocol: dict) -> dict:
    rates = [entry["success_rate"] for entry in tasks.values()]
    return {"tasks": tasks, "mean_success": sum(rates) / len(rates), "protocol": protocol}


def markdown_table(document: dict) -> str:
    rows = [
        "| task | success | episodes | mean length | example instruction | video |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, entry in document["tasks"].items():
        successes = round(entry["success_rate"] * entry["episodes"])
        video = f"[mp4]({entry['video']})" if entry["video"] else "-"
        rows.append(
            f"| {name} | {entry['success_rate']:.0%} ({successes}/{entry['episodes']}) | {entry['episodes']} "
            f"| {entry['mean_length']:.1f} | {entry['example_instruction']} | {video} |"
        )
    rows.append(f"| **mean** | **{document['mean_success']:.0%}** | | | | |")
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
