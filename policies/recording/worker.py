"""The worker side of ``vla-record``: simulate one episode, render it and encode its videos.

Runs in spawned worker processes (or in the recording process itself with one worker). Environments are
built once per process and task, since compiling a scene and creating a renderer cost more than an episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policies import suites
from policies.rollout import run_episode
from vla.data.video import EncodedVideo, encode_video

_ENVS: dict[tuple, object] = {}  # per process: (task, image_size, cameras, held-out template) -> env


@dataclass(frozen=True)
class EpisodeJob:
    task: str
    attempt: int  # the task's k-th attempt
    seed: int  # the scene: base seed + attempt, or + attempt // goals_per_scene
    rotation: int = 0  # > 0: the goal this many places after the scene's drawn one in task.goals()


@dataclass
class RecordedEpisode:
    job: EpisodeJob
    instruction: str
    success: bool
    state: np.ndarray  # float32 (T, S)
    actions: np.ndarray  # float32 (T, A)
    videos: dict[str, EncodedVideo]  # camera -> an encoded mp4 of its T frames, in the staging folder

    def discard(self) -> None:
        """Remove the staged videos (after they were committed, or of an episode that is not kept)."""
        for video in self.videos.values():
            Path(video.path).unlink(missing_ok=True)


def _env(task: str, settings: dict):
    held = settings.get("holdout_templates", {}).get(task)
    key = (task, settings["image_size"], settings["cameras"], held)
    if key not in _ENVS:
        _ENVS[key] = suites.of(task).make_env(task, settings["image_size"], settings["cameras"], held)
    return _ENVS[key]


def _rotated_goal(env, job: EpisodeJob) -> dict | None:
    """Reset options aiming the scene of ``job.seed`` at the goal ``job.rotation`` places after its own."""
    if job.rotation == 0:
        return None
    env.reset(seed=job.seed)
    task = env.unwrapped.task
    goals = task.goals()
    return {"goal": goals[(goals.index(task.goal) + job.rotation) % len(goals)]}


def episode_setup(job: EpisodeJob, settings: dict) -> tuple:
    """The environment, the expert and the reset options that record ``job`` (and replay it exactly)."""
    env = _env(job.task, settings)
    # The expert's noise is seeded by the episode seed, so an attempt replays exactly.
    noise_seed = job.seed if job.rotation == 0 else [job.seed, job.rotation]  # each goal its own noise
    expert = suites.of(job.task).make_expert(job.task, env, settings["noise"], noise_seed)
    return env, expert, _rotated_goal(env, job)


def record_episode(job: EpisodeJob, settings: dict) -> RecordedEpisode:
    """Run the scripted expert for ``job`` and encode each camera's frames into the staging folder."""
    env, expert, options = episode_setup(job, settings)
    result = run_episode(
        env, expert, job.seed, record_steps=True, executed_labels=settings["executed_labels"], options=options
    )
    steps = result.steps
    videos = {}
    for camera, frames in steps.images.items():
        name = job.task.replace("/", "_")  # Meta-World ids hold a slash
        path = Path(settings["staging"]) / f"{name}-{job.attempt}-{camera}.mp4"
        videos[camera] = encode_video(frames, path, settings["fps"], codec=settings["codec"])
    return RecordedEpisode(job, result.instruction, result.success, steps.state, steps.actions, videos)
