"""Meta-World (``sim.metaworld``) as a suite, under LeRobot's evaluation protocol (docs/metaworld.md).

What differs from our tasks, and only that, lives here: the ids (``metaworld/<task>`` or a group,
``metaworld/mt10``), the options it refuses (one camera, one instruction and one goal per task, 500 steps),
the evaluation environments' settings (``MetaWorldSettings``, in place of ``sim.EnvConfig``), the protocol's
``metaworld`` entry and the ``metaworld`` section of the results: the mean over tasks (what ``lerobot-eval``
pools) and the means per difficulty bucket and of the buckets present (what papers print), with the
report's table of them. The closed loop, the seeds and the per-task results are the evaluator's own.

Module-level imports stay free of torch and of Meta-World itself (spawned workers import this module; a
process without Meta-World must be able to say how to get it): only building an env imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sim
from policies.seeds import rate_with_interval, wilson_interval
from policies.suites.base import Suite
from sim import metaworld as mw


@dataclass(frozen=True)
class MetaWorldSettings:
    """The evaluation environments' options (what ``sim.EnvConfig`` is for our tasks); picklable."""

    image_size: tuple[int, int]  # (H, W) of corner2: the checkpoint's source size; the video size for experts
    cameras: tuple[str, ...]  # (corner2,) when rendered, () when nothing reads images
    max_steps: int = mw.MAX_STEPS
    control_hz: int = mw.CONTROL_HZ


class MetaWorld(Suite):
    name = "metaworld"
    title = "Meta-World"
    prefix = mw.ID_PREFIX
    spelling = f"Meta-World ids: metaworld/<task> or a group ({mw.ID_PREFIX}mt10, ...)"
    robot_type = "metaworld_sawyer"
    fps = mw.CONTROL_HZ
    cameras = (mw.CAMERA,)
    state_names = mw.STATE_NAMES
    action_names = mw.ACTION_NAMES
    episodes_per_task = 10  # LeRobot's Meta-World evaluation (lerobot-eval eval.n_episodes=10)
    seed_draws = "each picks one of the task's 50 MT1 scenes"  # our tasks draw everything from the seed

    def resolve(self, names: list[str]) -> list[str]:
        ids = [mw.ID_PREFIX + task for name in names for task in mw.resolve(name)]
        return list(dict.fromkeys(ids))  # drop repeats (groups overlap), keep order

    def check_installed(self) -> None:
        mw.check_installed()

    def check_recording(self, config) -> list[str]:
        sim.EnvConfig(image_size=tuple(config.image_size), cameras=())  # validates the size
        if config.goals_per_scene != 1:
            raise ValueError(
                f"goals_per_scene must be 1 for Meta-World, got {config.goals_per_scene}: each task has one "
                "instruction and one goal, so a scene has no other goal to name"
            )
        if config.holdout_templates not in (None, "none"):
            raise ValueError(
                f"holdout_templates must be null for Meta-World, got {config.holdout_templates!r}: each task "
                "has one instruction, so there is no paraphrase to hold out"
            )
        return self.model_cameras(config.cameras, "cameras")

    def model_cameras(self, cameras: Any, option: str) -> list[str]:
        """``[corner2]`` for its one camera, or for our default ``[agentview, wrist]``, taken to mean "the
        default"; ``ValueError`` for any other."""
        if list(cameras) in (list(sim.CAMERAS), [mw.CAMERA]):
            return [mw.CAMERA]
        raise ValueError(f"Meta-World has one camera: {option} must be [{mw.CAMERA}], got {list(cameras)}")

    def record_options(self, image_size: Any) -> dict:
        # Its one camera at the size the model reads (ours record both cameras at the recording's size).
        return {"cameras": [mw.CAMERA], "image_size": list(image_size)}

    def make_env(self, task: str, image_size: tuple[int, int], cameras: tuple[str, ...], held: str | None):
        return mw.make(task, image_size=image_size)  # corner2 always; no template to hold out

    def make_expert(self, task: str, env, noise: float, seed):
        return mw.metaworld_expert(env, noise=noise, seed=seed)

    def check_evaluation(self, modes: list[str], env_options: dict | None, camera_map: dict | None) -> None:
        self.check_instruction_modes(modes, "instruction", "use instruction=normal")
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

    def check_instruction_modes(self, modes: list[str], option: str, remedy: str) -> None:
        if [mode for mode in modes if mode != "normal"]:
            raise ValueError(
                f"{option}={modes} is not available on Meta-World: each task has one instruction naming its "
                "one goal, so swap has no other goal to name, heldout and wordings no held-out paraphrase, "
                f"and blank no chance level to compare with (its instruction only names the task); {remedy}"
            )

    def eval_settings(self, policy, env_options: dict | None, videos: bool) -> MetaWorldSettings:
        """corner2 at the size the policy asks for (a checkpoint: its training frames' size before the
        resize, ``ModelConfig.source_image_size``), or, for a policy that reads no images (the experts),
        nothing unless videos are wanted: then ``render_size``."""
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

    def make_eval_env(self, task: str, settings: MetaWorldSettings) -> mw.MetaWorldEnv:
        # Not make_env: here nothing is rendered for a policy that reads no images, and the limit can shrink.
        return mw.make(
            task,
            image_size=settings.image_size,
            render_images=bool(settings.cameras),
            max_steps=settings.max_steps,
        )

    def describe(self, settings: MetaWorldSettings, tasks: list[str]) -> dict:
        """The protocol's ``metaworld`` entry: ``sim.metaworld.protocol`` and each task's instruction."""
        entry = {
            **mw.protocol(settings.image_size, settings.max_steps),
            "render_images": bool(settings.cameras),
            "episodes_per_task_default": f"{self.episodes_per_task}, as LeRobot's Meta-World evaluation",
            "buckets": "Seo et al. 2022 (arXiv:2206.14244), as LeRobot reports them",
            "instructions": {task: mw.INSTRUCTIONS[task.removeprefix(mw.ID_PREFIX)] for task in tasks},
        }
        return {"metaworld": entry}

    def summarise(self, entries: dict[str, dict]) -> dict:
        return {"metaworld": summary(entries)}

    def markdown(self, document: dict) -> str:
        return markdown(document)


METAWORLD = MetaWorld()


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
