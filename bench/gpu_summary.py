"""The GPU check's summary (bench/gpu_check.py) as JSON and as markdown, from one dict.

The dict: ``plan``, ``estimate_s``, ``total_s`` (once done), ``environment`` (setup's readings) and
``stages``: per stage ``budget_s``, ``status`` (ok | failed | skipped), ``seconds``, ``error``, and the
stage's own results (bench/gpu_measure.py's for training and inference; vla-demo's for demo).
"""

from __future__ import annotations

import json
from pathlib import Path

INFERENCE_BAR = 200  # chunks/s at batch 32 with parallel decoding (issue 23's bar)
MFU_GOAL = 0.40


def write(json_path: Path, markdown_path: Path, summary: dict) -> None:
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    markdown_path.write_text(markdown(summary))


def markdown(summary: dict) -> str:
    env, stages = summary.get("environment", {}), summary["stages"]
    device = env.get("gpu") or f"CPU: {env.get('cpu', '?')}"
    lines = [
        f"# GPU check ({summary['plan']}): {device}",
        "",
        f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), driver {env.get('driver')}, "
        f"Python {env.get('python')}, {env.get('cores')} cores. LLM: {env.get('llm_weights')}. "
        f"Sentence encoder: {env.get('sentence_encoder_weights')}.",
        "",
        "| stage | budget (s) | took (s) | status |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, stage in stages.items():
        took = f"{stage['seconds']:.1f}" if "seconds" in stage else "-"
        status = stage["status"] + (f": {stage['error']}" if stage.get("error") else "")
        lines.append(f"| {name} | {stage['budget_s']} | {took} | {status} |")
    total = summary.get("total_s")
    lines += ["", f"Estimate {summary['estimate_s']} s; took {total:.0f} s." if total else "Not finished."]
    for name, render in (
        ("gpu_tests", _tests),
        ("training", _training),
        ("inference", _inference),
        ("demo", _demo),
    ):
        if stages.get(name, {}).get("status") == "ok":
            lines += ["", *render(stages[name])]
    return "\n".join(lines) + "\n"


def _tests(stage: dict) -> list[str]:
    return ["## GPU tests", "", f"`{stage['command']}`: {stage['result']}"]


def _training(stage: dict) -> list[str]:
    mfu = f"{stage['mfu']:.1%}" if stage["mfu"] is not None else "n/a (no peak known for this device)"
    memory = f"{stage['peak_gib']:.1f} GiB" if stage["peak_gib"] is not None else "n/a"
    lines = [
        "## Training throughput (bf16 autocast, forward + backward + AdamW)",
        "",
        f"{stage['model']}; batch {stage['batch']}, median of {stage['steps']} steps of {stage['step_s'] * 1000:.1f} ms.",
        "",
        "| samples/s | LLM tokens/s | GFLOP/sample | model TFLOP/s | MFU | peak memory |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {stage['samples_per_s']:.1f} | {stage['tokens_per_s']:.0f} | {stage['gflops_per_sample']:.1f} | "
        f"{stage['model_tflops']:.1f} | {mfu} | {memory} |",
    ]
    if stage["peak_tflops"]:
        lines += ["", f"MFU against {stage['peak_tflops']} TFLOP/s dense bf16; goal {MFU_GOAL:.0%}."]
    if stage.get("oom"):
        lines += ["", f"Note: {stage['oom']}."]
    return lines


def _inference(stage: dict) -> list[str]:
    lines = [
        f"## Inference ({stage['precision']}, VLAPolicy.infer_batch)",
        "",
        stage["model"] + ".",
        "",
        "| decoding | batch | chunks/s | p50 (ms) | p90 (ms) | p99 (ms) | calls |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in stage["rows"]:
        lines.append(
            f"| {row['decoding']} | {row['batch']} | {row['chunks_per_s']:.1f} | {row['p50_ms']:.1f} | "
            f"{row['p90_ms']:.1f} | {row['p99_ms']:.1f} | {row['calls']} |"
        )
    bar = [r for r in stage["rows"] if r["decoding"] == "parallel" and r["batch"] == 32 and stage["gpu"]]
    if bar:
        met = "met" if bar[0]["chunks_per_s"] >= INFERENCE_BAR else "not met"
        lines += ["", f"Bar: >= {INFERENCE_BAR} chunks/s at batch 32, parallel: {met}."]
    return lines


def _demo(stage: dict) -> list[str]:
    timing = ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in stage["timing"].items())
    tasks = ", ".join(
        f"{task} {rate:.0%} of {stage['episodes_per_task'][task]}" for task, rate in stage["tasks"].items()
    )
    return [
        "## End to end (vla-demo, configs/demo.yaml cut short)",
        "",
        f"Overrides: `{' '.join(stage['overrides'])}`.",
        "",
        f"Stages: {timing}. Success on held-out seeds: {tasks}; mean {stage['mean_success']:.0%} "
        "(a short run: it shows the pipeline on this machine, not the recipe's success).",
    ]
