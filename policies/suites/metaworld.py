"""``vla-eval task=metaworld/...``: Meta-World under LeRobot's evaluation protocol (docs/metaworld.md).

What differs from our tasks, and only that, lives here: the tasks and options (one camera, one instruction
per task, 500 steps), the environments' settings (``MetaWorldSettings``, in place of ``sim.EnvConfig``), the
protocol's Meta-World fields and the ``metaworld`` section of the results: the mean over tasks (what
``lerobot-eval`` pools) and the means per difficulty bucket and of the buckets present (what papers print).
The closed loop, the seeds and the per-task results are the evaluator's own. Task ids and the scripted
experts come from ``policies.suites``, the one dispatch between the two simulators.

Module-level imports stay free of torch and of Meta-World itself (spawned workers import this module; a
process without Meta-World must be able to say how to get it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies import suites
from policies.seeds import rate_with_interval, wilson_interval
from sim import metaworld as mw

# LeRobot's Meta-World evaluation runs 10 episodes per task (lerobot-eval eval.n_episodes=10); ours is 50.
EPISODES_PER_TASK = 10
SIM_EPISODES_PER_TASK = 50


@dataclass(frozen=True)
class MetaWorldSettings:
    """The environments' options (what ``sim.EnvConfig`` is for our tasks); picklable for spawned workers."""

    image_size: tuple[int, int]  # (H, W) of corner2: the checkpoint's source size; the video size for experts
    cameras: tuple[str, ...]  # (corner2,) when rendered, () when nothing reads images
    max_steps: int = mw.MAX_STEPS
    control_hz: int = mw.CONTROL_HZ

    def make(self, task: str) -> mw.MetaWorldEnv:
        # Not suites.make_env: it always renders (a recording needs frames) and has no step limit to set.
        return mw.make(
            task, image_size=self.image_size, render_images=bool(self.cameras), max_steps=self.max_steps
        )


def is_metaworld(tasks: Any) -> bool:
    """Whether a config's ``task`` (a name, an id or a list) names Meta-World."""
    names = [tasks] if isinstance(tasks, str) else list(tasks or [])
    return any(suites.is_metaworld(name) for name in names)


def check_installed(tasks: Any) -> None:
    """``ImportError`` saying how to get Meta-World when ``tasks`` name it and it is missing here."""
    if is_metaworld(tasks):
        mw.check_installed()


def resolve_tasks(tasks: Any) -> list[str]:
    """A config's tasks -> task names of one simulator (``suites.resolve``), with an evaluation's wording for
    a mix of both."""
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    if is_metaworld(names) and not all(suites.is_metaworld(name) for name in names):
        others = [name for name in names if not suites.is_metaworld(name)]
        raise ValueError(
            f"cannot evaluate Meta-World and our tasks {others} in one run: their robots, state and action "
            "sizes and cameras differ, so no checkpoint fits both; evaluate each with its own out="
        )
    return suites.resolve(tasks)


def default_episodes(tasks: list[str], episodes_per_task: int | None) -> int:
    """``episodes_per_task`` when set, else the protocol's: 10 on Meta-World (LeRobot's), 50 on ours."""
    if episodes_per_task is not None:
        return episodes_per_task
    return EPISODES_PER_TASK if suites.suite_of(tasks) is suites.METAWORLD else SIM_EPISODES_PER_TASK


def check_options(modes: list[str], env_options: dict | None, camera_map: dict | None) -> None:
    """``ValueError`` for the options Meta-World cannot honour, each with the reason."""
    refuse_instruction_modes(modes, "instruction", "use instruction=normal")
    options = {key: value for key, value in (env_options or {}).items() if value is not None}
    if list(options.get("cameras", [mw.CAMERA])) != [mw.CAMERA]:
        raise ValueError(
            f"Meta-World renders one camera: cameras must be [{mw.CAMERA}] or null, got {options['cameras']}"
        )
    mapped = sorted({str(camera) for camera in (camera_map or {}).values()} - {mw.CAMERA})
    if mapped:
        raise ValueError(f"camera_map reads {mapped}, but Meta-World renders only {mw.CAMERA}")
    jitter = {name: options[name] for name in ("lighting_jitter", "camera_jitter") if options.get(name)}
    if jitter:
        raise ValueError(
            f"{jitter} are our simulator's randomizations; Meta-World's scenes vary only by MT1's train "
            "tasks (the protocol), so they must be 0"
        )
    if options.get("max_steps", 1) > mw.MAX_STEPS:
        raise ValueError(
            f"max_steps must be <= {mw.MAX_STEPS} on Meta-World (its limit), got {options['max_steps']}"
        )


def refuse_instruction_modes(modes: list[str], option: str, remedy: str) -> None:
    """``ValueError`` naming ``option`` when ``modes`` hold a mode other than normal, with the reason."""
    if [mode for mode in modes if mode != "normal"]:
        raise ValueError(
            f"{option}={modes} is not available on Meta-World: each task has one instruction naming its "
            "one goal, so swap has no other goal to name, heldout and wordings no held-out paraphrase, and "
            f"blank no chance level to compare with (its instruction only names the task); {remedy}"
        )


def settings(policy, env_options: dict | None, videos: bool) -> MetaWorldSettings:
    """What the environments render: corner2 at the size the policy asks for (a checkpoint: its training
    frames' size before the resize, ``ModelConfig.source_image_size``), or, for a policy that reads no
    images (the experts), nothing unless videos are wanted: then ``render_size``."""
    options = {key: value for key, value in (env_options or {}).items() if value is not None}
    # As for our tasks, a policy that does not say which cameras it reads gets them all: here, corner2.
    reads = policy.cameras if hasattr(policy, "cameras") else (mw.CAMERA,)
    render = bool(reads) or bool(options.get("cameras")) or videos
    size = options.get("image_size") or getattr(policy, "image_size", None)
    if size is None and videos:
        size = options.get("render_size", (256, 256))
    return MetaWorldSettings(
        image_size=tuple(int(side) for side in (size or (480, 480))),  # else the protocol's default size
        cameras=(mw.CAMERA,) if render else (),
        max_steps=int(options.get("max_steps", mw.MAX_STEPS)),
    )


def protocol(config: MetaWorldSettings, tasks: list[str]) -> dict:
    """The protocol's ``metaworld`` entry: ``sim.metaworld.protocol`` and each task's instruction."""
    return {
        **mw.protocol(config.image_size, config.max_steps),
        "render_images": bool(config.cameras),
        "episodes_per_task_default": f"{EPISODES_PER_TASK}, as LeRobot's Meta-World evaluation",
        "buckets": "Seo et al. 2022 (arXiv:2206.14244), as LeRobot reports them",
        "instructions": {task: mw.INSTRUCTIONS[task.removeprefix(mw.ID_PREFIX)] for task in tasks},
    }


def _pooled(entries: list[dict]) -> dict:
    successes = sum(entry["successes"] for entry in entries)
    episodes = sum(entry["episodes"] for entry in entries)
    return {
        "success_rate": sum(entry["success_rate"] for entry in entries) / len(entries),
        "successes": successes,
        "episodes": episodes,
        "ci95": list(wilson_interval(successes, episodes)),  # every task runs as many episodes: pooled = mean
        "tasks": len(entries),
    }


def summary(tasks: dict[str, dict]) -> dict:
    """The results' ``metaworld`` section from the per-task entries (docs/metaworld.md)."""
    buckets = {}
    for bucket in mw.BUCKETS:
        names = {mw.ID_PREFIX + task for task in mw.GROUPS[bucket]}
        entries = [entry for task, entry in tasks.items() if task in names]
        if entries:
            buckets[bucket] = {**_pooled(entries), "bucket_tasks": len(mw.GROUPS[bucket])}
    rates = [entry["success_rate"] for entry in buckets.values()]
    return {
        "mean_over_tasks": _pooled(list(tasks.values())),
        "buckets": buckets,
        "mean_over_buckets": {"success_rate": sum(rates) / len(rates), "buckets": list(buckets)},
    }


def markdown(document: dict) -> str:
    """The per-bucket table of a Meta-World evaluation's report, or ``""``."""
    section = document.get("metaworld")
    if section is None:
        return ""
    rows = ["| bucket | tasks | success [95% CI] |", "|---|---:|---:|"]
    for bucket, entry in section["buckets"].items():
        rate = rate_with_interval(entry["success_rate"], entry["ci95"])
        rows.append(
            f"| {bucket} | {entry['tasks']}/{entry['bucket_tasks']} | {rate} ({entry['successes']}/{entry['episodes']}) |"
        )
    tasks = section["mean_over_tasks"]
    rows.append(
        f"| mean over tasks | {tasks['tasks']} | {rate_with_interval(tasks['success_rate'], tasks['ci95'])} "
        f"({tasks['successes']}/{tasks['episodes']}) |"
    )
    buckets = section["mean_over_buckets"]
    count = len(buckets["buckets"])
    rows.append(f"| mean over buckets | {count} bucket{'s' * (count != 1)} | {buckets['success_rate']:.0%} |")
    return (
        "## Meta-World by difficulty\n\n"
        "Buckets of Seo et al. 2022. The mean over tasks is what lerobot-eval pools; the mean over the buckets "
        "present is what papers print.\n\n" + "\n".join(rows) + "\n"
    )
