"""``vla-deploy``'s report: ``report.json`` (every episode, intervention counts, timing), ``report.md``,
``timing.csv`` (every tick) and ``timing.png`` under the run's ``out`` directory.

A robot without a success predicate (a real arm) leaves its episodes not judged: their ``success`` is null,
and so are ``success_rate``, ``successes`` and ``ci95`` when no episode was judged; lengths, holds and interventions are
reported all the same.

``report.json``::

    {
        "episodes": [{"episode", "seed", "instruction", "success", "steps", "ticks", "holds",
                      "watchdog_holds", "dropped", "chunks", "interventions": {reason: n},
                      "jitter_ms": {mean, p50, p95, max}, "latency_ms": {...}, "recorded_as",
                      "stopped": true (only on an episode a stop cut short; its success is null)}],
        "success_rate", "successes", "judged", "ci95": [low, high],   # over episodes the robot judged
        "interventions": {reason: n}, "timing": {... all ticks ...},
        "stopped": null | "e-stop: signal SIGINT" | "the policy failed: ...",
        "config": {... the vla-deploy options; a given api_key reads "<hidden>" ...}
    }
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from policies.reports.results import rate_with_interval
from policies.runtime import timing
from policies.seeds import wilson_interval


def document(episodes: list[dict], ticks: list, config: dict, stopped: str | None) -> dict:
    judged = [e for e in episodes if e["success"] is not None]
    successes = sum(bool(e["success"]) for e in judged)
    interventions = Counter()
    for episode in episodes:
        interventions.update(episode["interventions"])
    return {
        "episodes": episodes,
        "success_rate": successes / len(judged) if judged else None,
        "successes": successes if judged else None,
        "judged": len(judged),
        "ci95": list(wilson_interval(successes, len(judged))) if judged else None,
        "interventions": dict(interventions),
        "timing": timing.summary(ticks),
        "stopped": stopped,
        "config": config,
    }


def _ms(stats: dict | None, key: str = "p95") -> str:
    return "-" if stats is None else f"{stats[key]:.1f}"


def _robot(config: dict) -> str:
    """The robot as the report's header names it: the task for a simulated one, model and host for the arm,
    the name of any other."""
    if config["robot"] == "sim":
        return f"robot sim ({config.get('task')})"
    if config["robot"] != "franka":
        return f"robot {config['robot']}"
    franka = config.get("franka") or {}
    return f"robot franka ({franka.get('model')} at {franka.get('host')})"


def _cell(value, missing: str = "-") -> str:
    return missing if value is None else str(value)


def markdown(doc: dict) -> str:
    config = doc["config"]
    mode = "async" if config["async_inference"] else "sync"
    lines = [
        "# Deployment report\n",
        f"{_robot(config)}, {config['rate_hz']:g} Hz, {mode} inference, "
        f"n_action_steps {config['n_action_steps']}, safety scale {config['safety']['scale']:g}"
        + (", DRY RUN" if config["safety"]["dry_run"] else ""),
        "",
    ]
    if doc["success_rate"] is not None:
        rate = rate_with_interval(doc["success_rate"], doc["ci95"])
        lines.append(f"**success {rate}** ({doc['successes']}/{doc['judged']} episodes)\n")
    elif doc["episodes"]:
        lines.append(
            "**success not judged**: this robot has no success predicate; judge the episodes yourself\n"
        )
    if doc["stopped"]:
        lines.append(f"**stopped early: {doc['stopped']}**\n")
    lines += [
        "| episode | seed | success | steps | ticks | holds | dropped | interventions | jitter p95 ms | latency p95 ms |",
        "|---:|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for e in doc["episodes"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(e["interventions"].items())) or "-"
        verdict = "stopped" if e.get("stopped") else _cell(e["success"], "not judged")
        lines.append(
            f"| {e['episode']} | {_cell(e['seed'])} | {verdict} | {e['steps']} "
            f"| {e['ticks']} | {e['holds']} "
            f"| {e['dropped']} | {reasons} | {_ms(e['jitter_ms'])} | {_ms(e['latency_ms'])} |"
        )
    totals = ", ".join(f"{k}: {v}" for k, v in sorted(doc["interventions"].items())) or "none"
    lines += ["", f"Safety interventions: {totals}. Per tick: `timing.csv`; plot: `timing.png`.", ""]
    return "\n".join(lines)


def write(out: str | Path, doc: dict, ticks: list, rate_hz: float) -> Path:
    """Write the four files under ``out``; return the directory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "report.md").write_text(markdown(doc))
    timing.write_csv(ticks, out / "timing.csv")
    if ticks:
        timing.plot(ticks, out / "timing.png", rate_hz)
    return out
