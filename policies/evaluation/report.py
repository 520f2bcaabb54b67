"""What ``vla-eval`` writes besides the numbers: the protocol, the videos, the markdown and TensorBoard.

The results document (``results.json``, schema in docs/evaluation.md) extends ``policies.reports.results``'s:
each task's entry also lists its episodes, and the protocol holds everything needed to reproduce the numbers.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from policies import suites
from policies.evaluation.instruction import NORMAL, instruction_markdown
from policies.reports.results import markdown_table
from policies.reports.video import caption, write_mp4
from policies.rollout import EpisodeResult
from vla.machine import machine

HOLD_SECONDS = 0.7  # the last frame of each clip is held so the outcome can be seen
TENSORBOARD = "tensorboard"
VERSIONED = ("vla-stack", "torch", "transformers", "mujoco", "gymnasium", "numpy")


def episode_entry(result: EpisodeResult) -> dict:
    """One episode in ``results.json``."""
    return {
        "seed": result.seed,
        "success": result.success,
        "length": result.length,
        "instruction": result.instruction,
        **(result.extra or {}),
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def policy_protocol(policy) -> dict:
    """What identifies the policy: the checkpoint (path, weights digest, model summary) or the expert."""
    checkpoint = getattr(policy, "checkpoint", None)
    config = getattr(policy, "config", None)
    entry = {"policy": type(policy).__name__, "checkpoint": None}
    if checkpoint is not None:
        entry["checkpoint"] = str(Path(checkpoint).resolve())
        entry["checkpoint_sha256"] = file_sha256(Path(checkpoint) / "model.safetensors")
    if config is not None:
        entry["model"] = {
            "llm": config.llm.name,
            "vision": config.vision.kind,
            "cameras": list(config.cameras),
            "image_size": list(config.image_size),
            "chunk_size": config.chunk_size,
            "decoding": config.decoding,  # autoregressive | parallel (vla/model/decoding.py)
        }
        entry["camera_map"] = dict(policy.camera_map)
    if hasattr(policy, "noise"):
        entry["expert_noise"] = policy.noise
    return entry


def protocol(policy, env_config, seeds: list[int], max_steps: dict, execution: dict) -> dict:
    """Everything the numbers depend on; ``env_config``: a ``sim.EnvConfig`` or Meta-World's settings (a
    dataclass either way); ``execution``: chunking, n_action_steps, ensemble_coeff, num_envs, device."""
    env = {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(env_config).items()}
    env.pop("max_steps")  # per task below: the task's limit or the override
    return {
        **policy_protocol(policy),
        "seeds": list(seeds),
        "episodes_per_task": len(seeds),
        "max_steps": max_steps,
        **execution,
        **env,
        "versions": versions(),
        "machine": machine(),
    }


def _clip(result: EpisodeResult, fps: float) -> np.ndarray:
    frames = caption(result.frames, f"{result.instruction} (seed {result.seed})", result.success)
    return np.concatenate([frames, np.repeat(frames[-1:], round(HOLD_SECONDS * fps), axis=0)])


def write_task_video(out: Path, task: str, clips: list[EpisodeResult], fps: float) -> str | None:
    """``<out>/videos/<task>.mp4``: the clips one after the other, captioned; its path relative to ``out``."""
    if not clips:
        return None
    path = out / "videos" / f"{task}.mp4"
    write_mp4(path, np.concatenate([_clip(result, fps) for result in clips]), fps)
    return path.relative_to(out).as_posix()


def scalars(document: dict) -> dict[str, float]:
    """The TensorBoard scalars of a results document (the trainer's periodic evaluation logs these too)."""
    values = {"eval/mean_success": document["mean_success"]}
    for task, entry in document["tasks"].items():
        values[f"eval/success/{task}"] = entry["success_rate"]
        values[f"eval/mean_length/{task}"] = entry["mean_length"]
    for mode, results in document.get("instruction_modes", {}).items():  # vla-eval instruction=[...]
        values[f"eval/{mode}/mean_success"] = results["mean_success"]
        for task, entry in results["tasks"].items():
            values[f"eval/{mode}/success/{task}"] = entry["success_rate"]
    return values


def write_tensorboard(log_dir: Path, document: dict, step: int = 0) -> None:
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard and torch: only here

    with SummaryWriter(str(log_dir)) as writer:
        for tag, value in scalars(document).items():
            writer.add_scalar(tag, value, step)


def report_markdown(document: dict) -> str:
    p = document["protocol"]
    if p["checkpoint"]:
        policy = f"checkpoint `{p['checkpoint']}`"
    elif "expert_noise" in p:
        policy = f"the scripted experts (action noise {p['expert_noise']})"
    else:
        policy = f"`{p['policy']}`"
    seeds = p["seeds"]
    size = p["image_size"]
    images = f"observation images {size[0]}x{size[1]} ({', '.join(p['cameras'])})" if p["cameras"] else ""
    suite = suites.of(list(document["tasks"]))
    versions_line = ", ".join(f"{name} {v}" for name, v in p["versions"].items())
    if "machine" in p:  # results written before the machine was recorded lack it
        versions_line += f"; {p['machine']['cpu']}, {p['machine']['cores']} cores"
    top = p.get("instruction", {}).get("top_level", NORMAL)
    mode = "" if top == NORMAL else f" Instruction mode of this table: {top}."
    modes = instruction_markdown(document)
    return (
        "# Closed-loop evaluation\n\n"
        f"Policy: {policy}.{mode}\n\n"
        f"{markdown_table(document)}\n\n"
        f"{p['episodes_per_task']} episodes per task, seeds {seeds[0]}..{seeds[-1]} of the `{p['split']}` "
        f"split (episode i uses seed {seeds[0]} + i; {suite.seed_draws}); success with "
        f"its Wilson 95% interval; frames through codec `{p['frame_codec']}`; chunking `{p['chunking']}`, "
        f"n_action_steps {p['n_action_steps']}; {images or 'no observation images'}; control at "
        f"{p['control_hz']} Hz; step limits {p['max_steps']}; {versions_line}. "
        "Full protocol in `results.json`.\n"
        + (f"\n{modes}" if modes else "")
        + (f"\n{grasps}" if (grasps := grasp_markdown(document)) else "")
        + (f"\n{section}" if (section := suite.markdown(document)) else "")
    )


def grasp_markdown(document: dict) -> str:
    """The grasp timing of each task that picks (``sim.grasp``), or ``""`` when none does."""
    rows = []
    for task, entry in document["tasks"].items():
        g = entry.get("grasp")
        if g is not None:
            timely = f"{g['closed_in_time']}/{g['reached']}" if g["reached"] else "-"
            rows.append(f"| {task} | {g['reached']}/{g['episodes']} | {timely} |")
    if not rows:
        return ""
    window = next(e["grasp"]["window_steps"] for e in document["tasks"].values() if e.get("grasp"))
    return (
        "## Grasps\n\n| task | fingers reached the object | gripper closed within "
        f"{window} steps of reaching |\n|---|---:|---:|\n" + "\n".join(rows) + "\n\nReached: the TCP came "
        "within 1.5 cm of the centre of the object to pick. A policy that reaches and does not close hovers "
        "over the object with open fingers.\n"
    )
