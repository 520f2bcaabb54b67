"""``vla-eval``: closed-loop success rates of a VLA checkpoint (or the scripted experts) in simulation.

    vla-eval checkpoint=runs/tiny task=all episodes_per_task=50 num_envs=2 out=runs/eval   # held-out seeds
    vla-eval checkpoint=runs/tiny split=tune task=[PickUp] episodes_per_task=20             # while tuning
    vla-eval policy=expert task=[PickUp,Stack] episodes_per_task=20 out=runs/expert-eval
    vla-eval checkpoint=DIR chunking=ensemble camera_map={agentview:wrist,wrist:agentview}
    vla-eval checkpoint=DIR task=[PickUp,Stack] instruction=[normal,swap,blank,heldout]   # reads its instruction?
    vla-eval checkpoint=DIR task=[PressButton,PickUp] instruction=[normal,wordings]   # wordings people use
    vla-eval checkpoint=DIR task=metaworld/mt50   # Meta-World (.venv-metaworld), 10 episodes per task by default

Writes ``results.json`` (schema: docs/evaluation.md), ``report.md``, ``videos/<task>.mp4`` and TensorBoard
scalars under ``out``, and appends the results to the checkpoint's model card (its ``README.md``). Options: ``configs/eval.yaml``, validated by ``EvalConfig``. ``evaluate()`` is the
same evaluation as a function (the trainer's periodic closed-loop evaluation calls it).

Module-level imports stay free of torch: spawned environment workers import this module again.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from tqdm import tqdm

import sim
from policies import cli, suites
from policies.chunking import ACT_ENSEMBLE_COEFF, CHUNKING, make_executor
from policies.evaluation import report as eval_report
from policies.evaluation.card import append_evaluation
from policies.evaluation.closed_loop import ClipPicker, check_batchable, run_episodes
from policies.evaluation.envs import make_pool
from policies.evaluation.instruction import (
    BLANK,
    NORMAL,
    SWAP,
    blank_instructions_allowed,
    check_modes,
    heldout_templates,
    instruction_protocol,
    mode_document,
    resolve_modes,
    top_level_mode,
)
from policies.expert_policy import ExpertPolicy
from policies.loading import EXPERT, load_policy
from policies.reports.results import results_document, task_summary, write_report
from policies.seeds import HELDOUT, SPLITS, episode_seeds
from sim import grasp
from vla.model.precision import PRECISIONS

POLICIES = ("checkpoint", EXPERT)
FRAME_CODECS = ("none", "libx264")
GRASP_WINDOW_S = 1.0  # a grasp is timely when the gripper closes within this long of reaching the object


def env_config(policy, env_options: dict | None, tasks: list[str] | None = None, videos: bool = False):
    """The environments' options for ``tasks`` (None: ours): their suite's ``eval_settings``, what the policy
    reads, then ``env_options`` (``videos``: whether a policy that reads no images renders anyway)."""
    return suites.of(tasks).eval_settings(policy, env_options, videos)


def evaluate(
    checkpoint_or_policy,
    tasks: Any = "all",
    episodes_per_task: int | None = None,
    seed: int | None = None,
    num_envs: int = 1,
    *,
    split: str = HELDOUT.name,
    frame_codec: str = "none",
    n_action_steps: int = 5,
    chunking: str = "receding",
    ensemble_coeff: float = ACT_ENSEMBLE_COEFF,
    env_options: dict | None = None,
    camera_map: dict | None = None,
    device: str | None = None,
    precision: str = "fp32",
    expert_noise: float = 0.0,
    instruction: Any = NORMAL,
    holdout_templates: Any = "last",
    out: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate closed-loop; return the results document (docs/evaluation.md). ``episodes_per_task``: None is
    the protocol's, 50 on our tasks and 10 on Meta-World's (LeRobot's). Episode i of every task uses
    seed ``seed + i`` (default: the first seed of ``split``, ``policies.seeds``); all must lie in ``split``.
    ``frame_codec="libx264"``: the policy sees each camera image after an H.264 round trip at the
    recorder's settings, as its training frames were. ``precision``: the float type a checkpoint computes in
    (auto, fp32, bf16; vla/model/precision.py). ``env_options``: fields of
    ``sim.EnvConfig`` (image_size, cameras, max_steps, render_size, ...). ``instruction``: a mode or a list
    of ``normal``, ``swap``, ``blank``, ``heldout``, ``wordings`` (``policies.evaluation.instruction``),
    each run on the same seeds; ``holdout_templates`` (``sim.holdout_templates``) names heldout's templates. With ``out``,
    each task's video is written to ``<out>/videos/<task>.mp4`` (``<task>-<mode>.mp4`` for the modes
    beside the top level's); nothing else is written (``run`` writes the report)."""
    tasks = suites.resolve(tasks, suites.EVALUATE)
    suite = suites.of(tasks)
    modes = resolve_modes(instruction)
    _check_suite_options(tasks, modes, env_options, camera_map)
    templates = heldout_templates(modes, tasks, holdout_templates)
    episodes_per_task = suite.episodes(episodes_per_task)
    if episodes_per_task < 1 or num_envs < 1:
        raise ValueError(f"episodes_per_task and num_envs must be >= 1, got {episodes_per_task}, {num_envs}")
    make_executor(chunking, n_action_steps, ensemble_coeff)  # validates the chunking options up front
    seeds = episode_seeds(split, episodes_per_task, seed)
    if frame_codec not in FRAME_CODECS:
        raise ValueError(f"frame_codec must be one of {FRAME_CODECS}, got {frame_codec!r}")
    policy = load_policy(
        checkpoint_or_policy,
        camera_map=camera_map,
        device=device,
        precision=precision,
        expert_noise=expert_noise,
    )
    # Read before a wrapper hides the policy's attributes.
    expert = policy.noise if isinstance(policy, ExpertPolicy) else None
    execution = _execution(policy, chunking, n_action_steps, ensemble_coeff, num_envs, split, frame_codec)
    if frame_codec != "none":
        from policies.evaluation.encoded_frames import EncodedFrames

        policy = EncodedFrames(policy, frame_codec)
    check_batchable(policy, min(num_envs, episodes_per_task))
    config = suite.eval_settings(policy, env_options, videos=out is not None)
    execute = partial(make_executor, chunking, n_action_steps, ensemble_coeff)
    pools = partial(make_pool, config=config, num_envs=min(num_envs, episodes_per_task), expert_noise=expert)
    runs = _Runs(policy, seeds, execute, modes, templates, out)
    entries, max_steps, timing = runs.all_tasks(tasks, pools, progress)
    protocol = eval_report.protocol(policy, config, seeds, max_steps, execution)
    document = _document(entries, modes, templates, protocol)
    document["protocol"].update(suite.describe(config, tasks))  # what the suite adds: Meta-World's buckets
    document.update(suite.summarise(document["tasks"]))
    return {**document, "timing": _timing(timing)}


def evaluate_instruction_following(
    checkpoint_or_policy,
    tasks: Any = None,
    episodes_per_task: int = 20,
    modes: Any = (NORMAL, SWAP),
    **evaluate_options,
) -> dict:
    """Evaluate ``modes`` on ``tasks`` (default: every language task); return the results document, whose
    ``instruction_modes[mode]`` holds each mode's results and ``instruction_markdown(document)`` renders
    them. ``evaluate_options``: ``evaluate``'s (seed, num_envs, split, out, holdout_templates, ...)."""
    tasks = sim.language_tasks() if tasks is None else tasks
    modes = list(resolve_modes(modes))
    return evaluate(checkpoint_or_policy, tasks, episodes_per_task, instruction=modes, **evaluate_options)


def _execution(policy, chunking, n_action_steps, ensemble_coeff, num_envs, split, frame_codec) -> dict:
    """How the episodes were run, for the results' protocol."""
    return {
        "chunking": chunking,
        "n_action_steps": n_action_steps,
        "ensemble_coeff": ensemble_coeff,
        "num_envs": num_envs,
        "device": str(getattr(getattr(policy, "model", None), "device", "cpu")),
        "precision": getattr(policy, "precision", None),  # what the model computes in; None: no model
        "split": split,
        "split_range": [SPLITS[split].start, SPLITS[split].stop - 1],
        "frame_codec": frame_codec,
    }


def _check_suite_options(tasks: list[str], modes: list[str], env_options, camera_map) -> None:
    """Options the tasks' suite cannot honour, refused with the reason before anything runs (its own checks
    first: Meta-World refuses every mode but normal, so ``check_modes`` never speaks of its tasks); a suite
    whose simulator is not installed here: ``ImportError`` saying how to get it."""
    suite = suites.of(tasks)
    suite.check_evaluation(modes, env_options, camera_map)
    suite.check_installed()
    check_modes(modes, tasks)


def _document(entries: dict[str, dict], modes: list[str], templates: dict, protocol: dict) -> dict:
    """The results document: the top-level mode's results where they always were (``tasks``, ...), every
    mode's under ``instruction_modes`` when more than normal ran, the modes in ``protocol.instruction``."""
    documents = {mode: mode_document(mode, entries[mode]) for mode in modes}
    protocol = {**protocol, "instruction": instruction_protocol(modes, templates, documents)}
    document = results_document(entries[top_level_mode(modes)], protocol)
    if modes != [NORMAL]:
        document["instruction_modes"] = documents
    return document


@dataclass
class _Runs:
    """What every task's episodes share: the policy, the seeds, chunk execution, the instruction modes."""

    policy: Any
    seeds: list[int]
    execute: Any  # () -> a chunk executor
    modes: list[str]
    templates: dict[str, str]  # heldout's template per task
    out: str | Path | None

    def all_tasks(self, tasks: list[str], pools, progress: bool) -> tuple[dict, dict, dict]:
        """Per mode and task the results entry; per task the step limit and the timing."""
        entries, max_steps, timing = {mode: {} for mode in self.modes}, {}, {}
        total = len(tasks) * len(self.seeds) * len(self.modes)
        with tqdm(total=total, unit="episode", disable=not progress) as bar:
            for task in tasks:
                bar.set_description(task)
                started = time.perf_counter()
                pool = pools(task)
                try:
                    if hasattr(self.policy, "check_compatible"):
                        self.policy.check_compatible(pool)  # before the first step
                    for mode in self.modes:  # one pool for every mode: scenes and renderers are built once
                        entries[mode][task] = self.one_mode(pool, task, mode, lambda _: bar.update(1))
                    max_steps[task] = pool.max_steps
                finally:
                    pool.close()
                steps = sum(_steps(entries[mode][task]) for mode in self.modes)
                timing[task] = {"wall_s": time.perf_counter() - started, "env_steps": steps}
        return entries, max_steps, timing

    def one_mode(self, pool, task: str, mode: str, on_episode) -> dict:
        pool.set_instruction(mode, self.templates.get(task))
        video = task if mode == top_level_mode(self.modes) else f"{task}-{mode}"
        with blank_instructions_allowed(self.policy) if mode == BLANK else nullcontext():
            return _run_task(pool, self.policy, self.seeds, self.execute, self.out, video, on_episode)


def _run_task(pool, policy, seeds: list[int], execute, out: str | Path | None, name: str, on_episode) -> dict:
    """One task's entry in the results document, and its video ``videos/<name>.mp4`` under ``out`` (if
    given)."""
    clips = ClipPicker() if out is not None else None
    results = run_episodes(pool, policy, seeds, execute, clips, on_episode)
    video = None
    if clips is not None:
        video = eval_report.write_task_video(Path(out), name, clips.clips(), pool.fps)
    timing = grasp.closed_within([r.extra or {} for r in results], steps=round(pool.fps * GRASP_WINDOW_S))
    return {
        **task_summary(results, video),
        **({"grasp": timing} if timing is not None else {}),
        "episode_results": [eval_report.episode_entry(r) for r in results],
    }


def _steps(entry: dict) -> int:
    return sum(episode["length"] for episode in entry["episode_results"])


def _timing(per_task: dict) -> dict:
    """Wall time and environment steps per second (environment creation included); not reproducible."""
    wall = sum(entry["wall_s"] for entry in per_task.values())
    steps = sum(entry["env_steps"] for entry in per_task.values())
    return {"wall_s": wall, "env_steps": steps, "env_steps_per_s": steps / wall, "tasks": per_task}


@dataclass
class EvalConfig:
    checkpoint: str | None = None  # a checkpoint directory, or a vla-train run (its checkpoints/last)
    policy: str = "checkpoint"  # "checkpoint" | "expert" (the scripted experts, through the same loop)
    expert_noise: float = 0.0  # policy=expert: std of Gaussian noise on the arm actions, seeded per episode
    task: Any = "all"  # "all", a task name, or a list of names; or Meta-World ids (metaworld/mt10, ...)
    episodes_per_task: int | None = None  # None: 50 on our tasks, 10 on Meta-World (LeRobot's protocol)
    split: str = HELDOUT.name  # "heldout" (reported numbers) | "tune" (choosing recipes): policies/seeds.py
    seed: int | None = None  # episode i of every task uses seed + i; None: the split's first seed
    frame_codec: str = "none"  # "libx264": images reach the policy through an H.264 round trip
    num_envs: int = 1  # environments stepped together (spawned processes when > 1), one batched inference
    n_action_steps: int = 5  # chunking=receding: actions executed from each chunk before re-planning
    chunking: str = "receding"  # "receding" | "ensemble" (ACT's temporal ensembling, a query every step)
    ensemble_coeff: float = ACT_ENSEMBLE_COEFF  # m in ACT's weights exp(-m * i), i = 0 the oldest
    # model camera -> observation camera; None: identity. Untyped so that camera_map={a:b} replaces None
    # (a typed dict would only merge into the default, refusing new keys).
    camera_map: Any = None
    cameras: list[str] | None = None  # observation cameras to render; None: those the policy reads
    image_size: list[int] | None = None  # (H, W) rendered; None: the checkpoint's (128x128 for the expert)
    render_size: list[int] = field(default_factory=lambda: [256, 256])  # (H, W) of the videos, even
    max_steps: int | None = None  # None: each task's own limit
    lighting_jitter: float = (
        0.0  # relative change of the key light's brightness and direction (sim.EnvConfig)
    )
    camera_jitter: float = 0.0  # m, uniform offset of the agentview camera (sim.EnvConfig)
    videos: bool = True  # videos/<task>.mp4: the first episode, the first success and the first failure
    tensorboard: bool = True  # <out>/tensorboard: success per task and the mean
    device: str = "cpu"  # where the checkpoint runs: cpu | cuda
    precision: str = "fp32"  # the checkpoint computes in fp32 | bf16 | auto (bf16 where native)
    torch_threads: int = 0  # CPU threads of the policy's forward passes; 0: torch's default (one per core)
    # normal | swap | blank | heldout | wordings, or a list of them: does the policy read its instruction?
    # (policies.evaluation.instruction). Untyped so that a single mode or a list both work.
    instruction: Any = NORMAL
    holdout_templates: Any = "last"  # heldout's templates: last, or {task: template text or index}
    out: str = "runs/eval"  # results.json, report.md, videos/, tensorboard/

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if (self.policy == EXPERT) == (self.checkpoint is not None):
            raise ValueError("give exactly one of checkpoint=DIR and policy=expert")
        self.task = suites.resolve(self.task, suites.EVALUATE)
        # episodes_per_task stays None (evaluate() takes the protocol's): a configuration composed over
        # defaults (vla-demo's eval:) sets the tasks, and with them the protocol, later.
        episodes = suites.of(self.task).episodes(self.episodes_per_task)
        episode_seeds(self.split, episodes, self.seed)  # inside the split, or an error now
        for name in ("num_envs", "n_action_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.frame_codec not in FRAME_CODECS:
            raise ValueError(f"frame_codec must be one of {FRAME_CODECS}, got {self.frame_codec!r}")
        if self.chunking not in CHUNKING:
            raise ValueError(f"chunking must be one of {CHUNKING}, got {self.chunking!r}")
        self.instruction = resolve_modes(self.instruction)
        if self.camera_map is not None and not isinstance(self.camera_map, dict):
            raise ValueError(
                f"camera_map must map model cameras to observation cameras, got {self.camera_map!r}"
            )
        _check_suite_options(self.task, self.instruction, self.env_options(), self.camera_map)
        heldout_templates(self.instruction, self.task, self.holdout_templates)  # valid, or an error now
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0, got {self.torch_threads}")
        if self.camera_map is not None:
            self.camera_map = {str(slot): str(camera) for slot, camera in self.camera_map.items()}

    def env_options(self) -> dict:
        return {
            "cameras": self.cameras,
            "image_size": self.image_size,
            "render_size": self.render_size,
            "max_steps": self.max_steps,
            "lighting_jitter": self.lighting_jitter,
            "camera_jitter": self.camera_jitter,
        }


ConfigStore.instance().store(name="eval_schema", node=EvalConfig)


def run(config: EvalConfig, card: bool = True) -> dict:
    """Evaluate, then write results.json, report.md, the videos and TensorBoard under ``config.out``, and
    (``card``) append the results to the checkpoint's model card (``policies.evaluation.card``)."""
    if config.torch_threads:
        import torch

        torch.set_num_threads(config.torch_threads)
    document = evaluate(
        EXPERT if config.policy == EXPERT else config.checkpoint,
        config.task,
        config.episodes_per_task,
        config.seed,
        config.num_envs,
        split=config.split,
        frame_codec=config.frame_codec,
        n_action_steps=config.n_action_steps,
        chunking=config.chunking,
        ensemble_coeff=config.ensemble_coeff,
        env_options=config.env_options(),
        camera_map=config.camera_map,
        device=config.device,
        precision=config.precision,
        expert_noise=config.expert_noise,
        instruction=config.instruction,
        holdout_templates=config.holdout_templates,
        out=config.out if config.videos else None,
    )
    results, _ = write_report(config.out, document, eval_report.report_markdown(document))
    if card:
        append_evaluation(document, "vla-eval", results.resolve())
    if config.tensorboard:
        eval_report.write_tensorboard(Path(config.out) / eval_report.TENSORBOARD, document)
    return document


@cli.app("vla-eval", "eval")
def main(config: EvalConfig) -> None:
    document = run(config)
    print(eval_report.report_markdown(document))
    print(f"wrote {config.out}/results.json, report.md" + (", videos/" if config.videos else ""))


if __name__ == "__main__":
    main()
