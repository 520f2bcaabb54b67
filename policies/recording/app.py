"""``vla-record``: record demonstrations in simulation as a LeRobotDataset v3.0.

    vla-record task=all episodes_per_task=50 out=data/demos workers=2
    vla-record task=[PickUp,Stack] episodes_per_task=10 out=data/demos keep=all noise=0.05
    vla-record task=all out=data/demos holdout_templates=last   # keep a paraphrase for vla-eval heldout
    vla-record task=[PressButton,PickUp] goals_per_scene=3       # each scene once per object it can name
    vla-record task=metaworld/mt10 out=data/metaworld-mt10        # Meta-World's experts (in .venv-metaworld)

Runs a policy (the scripted experts by default) on each task until it has ``episodes_per_task`` kept
episodes. Re-running tops every task up to that number: finished episodes are kept, new ones continue from
the next unused seed, and a run with other settings than the dataset's is refused (``recording.settings``).
Worker processes (spawned, never forked: forking after creating a renderer hangs) simulate, render and
encode video; this process alone writes the dataset, one whole episode at a time and in seed order, so
killing it leaves a dataset holding exactly the episodes completed so far, and any number of workers keeps
the episodes one worker would. The workers die with this process, however it dies (``parent_watch``), and
a second recorder on the same dataset is refused while this one runs (the writer's lock).
"""

from __future__ import annotations

import multiprocessing
import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from tqdm import tqdm

import sim
from policies import cli, suites
from policies.parent_watch import exit_with_parent
from policies.recording.settings import match_settings
from policies.recording.worker import EpisodeJob, RecordedEpisode, record_episode
from policies.seeds import RECORDING
from vla.data.committed import check_compatible
from vla.data.layout import INFO_PATH
from vla.data.meta import DatasetMeta, load_meta
from vla.data.writer import DatasetWriter, Episode

KEEP = ("success", "all")
STAGING = ".vla_staging"  # encoded episodes waiting to be committed; removed when recording ends
# A task whose policy keeps failing would otherwise loop forever under keep=success.
MAX_ATTEMPTS_FACTOR = 4
LABELS = ("intended", "executed")


@dataclass
class RecordConfig:
    task: Any = "all"  # "all", a task name, a list of names, or Meta-World ids (policies.suites)
    episodes_per_task: int = 10  # kept episodes per task; re-running tops each task up to this many
    out: str = "data/demos"  # the dataset; topping up needs the settings as recorded (meta/recording.json)
    keep: str = "success"  # "success": drop failed episodes; "all": keep every episode
    workers: int = 1  # parallel recording processes (spawned); the same episodes as with 1
    seed: int = 0  # a task's k-th attempt uses seed + k, inside the recording split (policies/seeds.py)
    policy: str = "expert"  # the scripted experts (the only one: learned policies come with vla-eval)
    noise: float = 0.0  # expert action noise (std, action units), seeded per episode
    labels: str = (
        "intended"  # with noise: record the expert's "intended" actions (DART) or the "executed" ones
    )
    image_size: list[int] = field(default_factory=lambda: [128, 128])  # (H, W)
    cameras: list[str] = field(default_factory=lambda: list(sim.CAMERAS))  # Meta-World: [corner2]
    codec: str = "libx264"  # or libsvtav1 (AV1, as LeRobot writes; slower to decode on CPU)
    # Instruction templates never recorded, for vla-eval instruction=heldout: none, last (each language
    # task's last template) or {task: template text or index} (the others: their last). sim.holdout_templates
    holdout_templates: Any = None
    # Counterfactual demonstrations: each scene (seed) is recorded with up to this many of the goals its
    # instruction can name, so the same layout appears with different targets and only the words tell them
    # apart. A task's k-th attempt is scene seed + k // n, goal (drawn goal + k % n), n = min(this, its goals).
    goals_per_scene: int = 1

    def __post_init__(self):
        self.task = suites.resolve(self.task)
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if self.keep not in KEEP:
            raise ValueError(f"keep must be one of {KEEP}, got {self.keep!r}")
        if self.labels not in LABELS:
            raise ValueError(f"labels must be one of {LABELS}, got {self.labels!r}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.workers < 1 or self.goals_per_scene < 1:
            raise ValueError(
                f"workers and goals_per_scene must be >= 1, got {self.workers}, {self.goals_per_scene}"
            )
        _check_recording_seed(self.seed)
        if self.policy != "expert":
            raise ValueError(
                f"policy must be 'expert' (learned policies come with vla-eval), got {self.policy!r}"
            )
        if not self.cameras:
            raise ValueError("cameras must name at least one camera")
        self.cameras = suites.of(self.task).check_recording(self)


ConfigStore.instance().store(name="record_schema", node=RecordConfig)


def _check_recording_seed(seed: int) -> None:
    """Demonstrations must never come from the seeds that tuning or reported evaluations use."""
    if not RECORDING.start <= seed < RECORDING.stop:
        raise ValueError(
            f"seed {seed} is outside the recording split [{RECORDING.start}, {RECORDING.stop - 1}]: seeds from "
            f"{RECORDING.stop} on are for tuning and held-out evaluation (policies/seeds.py)"
        )


def _setup(config: RecordConfig) -> dict:
    """What the dataset's info.json must say (the robot, cameras and video) for this recording."""
    suite = suites.of(config.task)
    return {
        "fps": suite.fps,
        "cameras": list(config.cameras),
        "image_size": tuple(config.image_size),
        "state_names": suite.state_names,
        "action_names": suite.action_names,
        "codec": config.codec,
    }


def _open_writer(config: RecordConfig) -> DatasetWriter:
    """The dataset at ``config.out``, created if need be, locked against other writers until closed."""
    root = Path(config.out)
    if (root / INFO_PATH).exists():
        return DatasetWriter.open(root)
    return DatasetWriter.create(root, robot_type=suites.of(config.task).robot_type, **_setup(config))


def _progress_so_far(meta: DatasetMeta, tasks: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per task: episodes already in the dataset, and the next unused seed offset."""
    kept = dict.fromkeys(tasks, 0)
    next_attempt = dict.fromkeys(tasks, 0)
    for row in meta.episodes:
        task = row.get("vla/sim_task")
        if task in kept:
            kept[task] += 1
            next_attempt[task] = max(next_attempt[task], int(row["vla/attempt"]) + 1)
    return kept, next_attempt


def goals_per_scene(task: str, wanted: int) -> int:
    """How many goals each scene of ``task`` is recorded with: ``wanted``, at most the task's goals. Only
    asked of the simulator when it matters: goal_count builds an env, and Meta-World's tasks have one goal."""
    return min(wanted, sim.goal_count(task)) if wanted > 1 else 1


def job_of(task: str, attempt: int, base_seed: int, per_scene: int) -> EpisodeJob:
    """The ``attempt``-th attempt of ``task``: scene seed ``base_seed + attempt // per_scene``, rotated to the
    goal ``attempt % per_scene`` places on."""
    scene, rotation = divmod(attempt, per_scene)
    return EpisodeJob(task, attempt, base_seed + scene, rotation)


def _jobs(
    config: RecordConfig, needed: dict[str, int], next_attempt: dict[str, int], added: dict[str, int]
) -> Iterator[EpisodeJob]:
    """Attempts in round-robin over the tasks still short of episodes (``added`` is updated by the
    caller as episodes are committed), each task's seeds in order, up to an attempt budget."""
    attempts = dict(next_attempt)
    budget = {task: next_attempt[task] + MAX_ATTEMPTS_FACTOR * n + 10 for task, n in needed.items()}

    def open_tasks() -> list[str]:
        return [t for t in needed if added[t] < needed[t] and attempts[t] < budget[t]]

    per_scene = {task: goals_per_scene(task, config.goals_per_scene) for task in needed}
    while open_tasks():
        for task in open_tasks():
            job = job_of(task, attempts[task], config.seed, per_scene[task])
            _check_recording_seed(job.seed)
            yield job
            attempts[task] += 1


def _commit(writer: DatasetWriter, recorded: RecordedEpisode) -> None:
    writer.add_episode(
        Episode(
            task=recorded.instruction,
            state=recorded.state,
            action=recorded.actions,
            videos=recorded.videos,
            extra={
                "sim_task": recorded.job.task,
                "attempt": recorded.job.attempt,
                "seed": recorded.job.seed,
                "success": int(recorded.success),
            },
        )
    )


def record(config: RecordConfig) -> dict[str, int]:
    """Top every task up to ``episodes_per_task`` kept episodes; return the episodes added per task.

    Refused (``DatasetError``) while another process writes the dataset (``DatasetLocked``), and when the
    dataset was recorded with other settings (each difference named). Meta-World's tasks without Meta-World
    installed: ``ImportError`` saying how to get it, before anything is written.
    """
    suites.of(config.task).check_installed()
    with _open_writer(config) as writer:
        kept, next_attempt = _progress_so_far(writer.meta, config.task)
        needed = {task: config.episodes_per_task - kept[task] for task in config.task}
        needed = {task: n for task, n in needed.items() if n > 0}
        match_settings(writer.meta, config, adding=bool(needed))
        check_compatible(writer.meta, _setup(config))
        added = dict.fromkeys(config.task, 0)
        if needed:
            _record_missing(writer, config, needed, next_attempt, added)
    short = {t: needed[t] - added[t] for t in needed if added[t] < needed[t]}
    if short:
        raise RuntimeError(f"the policy failed too often; episodes still missing per task: {short}")
    return added


def _record_missing(
    writer: DatasetWriter, config: RecordConfig, needed: dict, next_attempt: dict, added: dict
) -> None:
    """Record and commit episodes until each task has its ``needed`` (or its attempts run out)."""
    staging = writer.root / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run were never committed
    staging.mkdir(parents=True)
    settings = _episode_settings(config, staging)
    jobs = _jobs(config, needed, next_attempt, added)
    with tqdm(total=sum(needed.values()), unit="episode", desc="recording") as progress:
        finished = lambda: all(added[t] >= n for t, n in needed.items())  # noqa: E731
        for recorded in _run_jobs(jobs, settings, config.workers, finished):
            task = recorded.job.task
            if added[task] < needed[task] and (recorded.success or config.keep == "all"):
                _commit(writer, recorded)
                added[task] += 1
                progress.update(1)
            recorded.discard()
    shutil.rmtree(staging, ignore_errors=True)


def _episode_settings(config: RecordConfig, staging: Path) -> dict:
    return {
        "fps": suites.of(config.task).fps,
        "image_size": tuple(config.image_size),
        "cameras": tuple(config.cameras),
        "noise": config.noise,
        "executed_labels": config.labels == "executed",
        "codec": config.codec,
        "staging": str(staging),
        "holdout_templates": sim.holdout_templates(config.holdout_templates),  # task -> never drawn
    }


def _run_jobs(jobs: Iterator[EpisodeJob], settings: dict, workers: int, done) -> Iterator[RecordedEpisode]:
    """Record jobs in this process (workers=1) or in spawned worker processes, yielding in job order.

    In job order, not as they finish: a result that comes back early waits in its future. The caller then
    sees every episode one worker would, in the same order, and so keeps the same ones (the first successes
    of each task by seed). Jobs run ahead of the caller can only be extra attempts of tasks that turn out to
    be complete by the time they are yielded, which the caller drops.
    """
    if workers == 1:
        for job in jobs:
            yield record_episode(job, settings)
            if done():
                return
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=exit_with_parent) as pool:
        pending: deque[Future] = deque()
        try:
            while True:
                while len(pending) < 2 * workers and not done():
                    job = next(jobs, None)
                    if job is None:
                        break
                    pending.append(pool.submit(record_episode, job, settings))
                if not pending:
                    return
                yield pending.popleft().result()
                if done():
                    return
        finally:
            _abandon(pending)


def _abandon(pending: deque[Future]) -> None:
    """Cancel jobs no longer wanted; remove the staged videos of those already under way."""
    for future in pending:
        future.cancel()
    for future in pending:
        if not future.cancelled() and future.exception() is None:
            future.result().discard()


@cli.app("vla-record", "record")
def main(config: RecordConfig) -> None:
    added = record(config)
    meta = load_meta(Path(config.out))
    print(f"added {sum(added.values())} episodes {added}; {config.out} holds {meta.total_episodes} episodes")


if __name__ == "__main__":
    main()
