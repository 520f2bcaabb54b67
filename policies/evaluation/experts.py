"""``vla-sim-report``: run every task's scripted expert and report success rates, with videos.

    vla-sim-report                                        # all tasks, 20 episodes each, in runs/experts
    vla-sim-report task=[PickUp] episodes_per_task=100 videos=false noise=0.1 out=runs/pick

Writes ``results.json``, ``report.md`` and ``videos/<task>.mp4`` (the first episode, then the first failure
if any) under ``out``. Options: ``configs/sim_report.yaml``, validated by ``SimReportConfig``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from tqdm import tqdm

import sim
from policies import cli
from policies.reports.results import markdown_table, results_document, task_summary, write_report
from policies.reports.video import caption, write_mp4
from policies.rollout import EpisodeResult, run_episode

log = logging.getLogger(__name__)
HOLD_SECONDS = 0.7  # the last frame of each clip is held so the outcome can be seen
# Old option names -> the names every app uses, accepted with a notice for one more release (policies.cli).
RENAMED = {"tasks": "task", "episodes": "episodes_per_task"}


@dataclass
class SimReportConfig:
    task: Any = "all"  # "all", a task name, or a list of names
    episodes_per_task: int = 20  # the expert's episodes per task
    seed: int = 0  # episode i of a task uses seed + i
    out: str = "runs/experts"  # results.json, report.md, videos/
    videos: bool = True  # videos/<task>.mp4: the first episode, then the first failure if any
    noise: float = 0.0  # std of the Gaussian noise on the expert's arm actions
    image_size: list[int] = field(default_factory=lambda: [128, 128])  # (H, W) of observation images
    render_size: list[int] = field(default_factory=lambda: [256, 256])  # (H, W) of the videos

    def __post_init__(self):
        self.task = sim.resolve_tasks(self.task)
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if len(self.render_size) != 2 or any(v < 16 or v % 2 for v in self.render_size):
            raise ValueError(
                f"render_size must be (H, W), even and >= 16 (for H.264), got {self.render_size}"
            )

    def env_config(self) -> sim.EnvConfig:
        # No observation cameras: the expert reads privileged state, and videos come from env.render().
        return sim.EnvConfig(
            image_size=tuple(self.image_size), cameras=(), render_size=tuple(self.render_size)
        )


ConfigStore.instance().store(name="sim_report_schema", node=SimReportConfig)


def _clip(result: EpisodeResult, fps: float) -> np.ndarray:
    frames = caption(result.frames, result.instruction, result.success)
    return np.concatenate([frames, np.repeat(frames[-1:], round(HOLD_SECONDS * fps), axis=0)])


def _expert_episode(env, config: SimReportConfig, seed: int, record: bool) -> EpisodeResult:
    # The expert's noise is seeded by the episode seed, so an episode replays exactly for its video.
    return run_episode(env, sim.make_expert(env, noise=config.noise, seed=seed), seed, record)


def evaluate_task(task: str, config: SimReportConfig, progress: tqdm) -> tuple[dict, int]:
    """Run ``task``'s expert for ``config.episodes_per_task`` episodes; return its results entry and step
    limit."""
    env = sim.make(task, config=config.env_config())
    try:
        results = []
        for i in range(config.episodes_per_task):
            results.append(_expert_episode(env, config, config.seed + i, config.videos and i == 0))
            progress.update(1)
        video = None
        if config.videos:
            clips = [results[0]]
            failure = next((r for r in results if not r.success), None)
            if failure is not None and failure is not results[0]:
                replay = _expert_episode(env, config, failure.seed, record=True)
                if replay.success:
                    log.warning("%s seed %d: the replay for the video succeeded", task, failure.seed)
                clips.append(replay)
            fps = env.unwrapped.config.control_hz
            path = Path(config.out) / "videos" / f"{task}.mp4"
            write_mp4(path, np.concatenate([_clip(r, fps) for r in clips]), fps)
            video = path.relative_to(config.out).as_posix()
        return task_summary(results, video), env.unwrapped.max_steps
    finally:
        env.close()


def protocol(config: SimReportConfig, max_steps: dict[str, int]) -> dict:
    env_config = config.env_config()
    return {
        "seed": config.seed,
        "episodes": config.episodes_per_task,
        "noise": config.noise,
        "max_steps": max_steps,
        "image_size": list(env_config.image_size),
        "render_size": list(env_config.render_size),
        "render": asdict(env_config.render),
        "control_hz": env_config.control_hz,
        "physics_dt": env_config.physics_dt,
        "versions": {name: version(name) for name in ("mujoco", "gymnasium", "numpy")},
    }


def run(config: SimReportConfig) -> dict:
    """Evaluate every task, write the report under ``config.out`` and return the results document."""
    entries, max_steps = {}, {}
    with tqdm(total=len(config.task) * config.episodes_per_task, unit="episode") as progress:
        for task in config.task:
            progress.set_description(task)
            entries[task], max_steps[task] = evaluate_task(task, config, progress)
    document = results_document(entries, protocol(config, max_steps))
    write_report(config.out, document)
    return document


@cli.app("vla-sim-report", "sim_report", renamed=RENAMED)
def main(config: SimReportConfig) -> None:
    document = run(config)
    print(markdown_table(document))
    print(
        f"\nwrote {config.out}/results.json, {config.out}/report.md"
        + (" and videos/" if config.videos else "")
    )


if __name__ == "__main__":
    main()
