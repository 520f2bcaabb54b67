"""An evaluation's section of the evaluated checkpoint's model card (``README.md``, ``vla/train/card.py``).

``vla-eval`` (``evaluate.run``) and ``vla-demo`` append one section per evaluation: who evaluated and when,
the success table with Wilson 95% intervals, the split and seeds, how actions were executed, the
instruction modes when more than ``normal`` ran, and where the full results are. The scripted experts have
no checkpoint, hence no card.
"""

from __future__ import annotations

import time
from pathlib import Path

from policies.evaluation.instruction import instruction_markdown
from policies.reports.results import rate_with_interval
from vla.train.card import append_section, utc


def evaluation_section(document: dict, command: str, results: Path | None, now: float | None = None) -> str:
    """The markdown section of one results document (docs/evaluation.md's schema)."""
    p = document["protocol"]
    rows = ["| task | success [95% CI] | successes | mean length |", "|---|---:|---:|---:|"]
    for task, entry in document["tasks"].items():
        rate = rate_with_interval(entry["success_rate"], entry["ci95"])
        successes = f"{entry['successes']}/{entry['episodes']}"
        rows.append(f"| {task} | {rate} | {successes} | {entry['mean_length']:.1f} |")
    total = sum(entry["successes"] for entry in document["tasks"].values())
    episodes = sum(entry["episodes"] for entry in document["tasks"].values())
    mean = rate_with_interval(document["mean_success"], document["mean_ci95"])
    rows.append(f"| **mean** | **{mean}** | {total}/{episodes} | |")
    seeds = p["seeds"]
    top = p.get("instruction", {}).get("top_level", "normal")
    protocol = (
        f"Split `{p['split']}`: episode i of each task uses seed {seeds[0]} + i (seeds {seeds[0]}-{seeds[-1]}, "
        f"{p['episodes_per_task']} per task); instruction mode `{top}`; chunking `{p['chunking']}`, "
        f"{p['n_action_steps']} actions per chunk; frames through codec `{p['frame_codec']}`; device "
        f"{p['device']}; weights sha256 `{p.get('checkpoint_sha256', '-')}`."
    )
    where = f" Full results: `{results}`." if results is not None else ""
    modes = instruction_markdown(document).replace("## Instruction following", "#### Instruction following")
    stamp = utc(time.time() if now is None else now)
    return "\n\n".join(
        part for part in (f"### {command}, {stamp}", "\n".join(rows), protocol + where, modes.strip()) if part
    )


def append_evaluation(document: dict, command: str, results: Path | None) -> Path | None:
    """Append the evaluation to its checkpoint's card; the card's path, or None for a policy without one."""
    checkpoint = document["protocol"].get("checkpoint")
    if not checkpoint:
        return None
    return append_section(checkpoint, evaluation_section(document, command, results))
