"""``vla-demo`` (``make demo``): record demonstrations, train a VLA, evaluate it closed-loop, report.

    vla-demo                                   # the CPU demo (configs/demo.yaml): under 20 minutes on 2 cores
    vla-demo tasks=[OpenDrawer,CloseDrawer,PressButton] steps=3000 out=runs/demo3
    vla-demo --config-name suite_smollm2 stages=[record]       # the GPU recipe: record on a CPU machine,
    vla-demo --config-name suite_smollm2 stages=[train,eval]   # then train and evaluate on the GPU
    vla-demo --config-name metaworld_mt10_cpu                  # Meta-World MT10 (in .venv-metaworld)

Writes under ``out``: ``data/`` (the LeRobotDataset), ``train/`` (checkpoints, TensorBoard), ``results.json``,
``report.md``, ``videos/`` (evaluation episodes) and ``training_curves.png``. Each stage is resumable: a second
run reuses the recorded episodes and the finished training. ``stages`` runs a subset, in order.

``tasks`` may instead name Meta-World (``metaworld/mt10``, a task id or a list; not mixed with our tasks):
its experts record ``corner2`` at the model's image size, the model reads ``[corner2]`` (set so when
``model.cameras`` is our default), and vla-eval runs Meta-World's protocol (10 episodes per task unless
``eval_episodes`` says otherwise), the results' ``metaworld`` section included (docs/metaworld.md).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import sim
from policies.evaluation import metaworld as mw_eval
from policies.evaluation import report as eval_report
from policies.evaluation.evaluate import EvalConfig, run
from policies.evaluation.instruction import (
    NORMAL,
    evaluate_instruction_following,
    mode_document,
    resolve_modes,
)
from policies.recording import suites
from policies.recording.app import RecordConfig, record
from policies.reports.plots import plot_training_curves
from sim import metaworld as mw
from vla.model.config import ModelConfig
from vla.train.config import PRECISIONS, RESUME_MODES, TrainConfig

CURVES = ["train/loss", "train/token_accuracy", "val/token_accuracy", "val/l1", "val/goal_l1", "train/lr"]
STAGES = ("record", "train", "eval")


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    # Our tasks ("all", names) or Meta-World ids (metaworld/mt10, metaworld/reach-v3, ...), not both
    tasks: list[str] = field(default_factory=lambda: ["OpenDrawer", "CloseDrawer"])
    episodes_per_task: int = 60  # recorded demonstrations per task
    noise: float = 0.0  # expert action noise while recording; frames keep the intended actions (DART)
    workers: int = 2  # recording processes
    steps: int = 1000  # training steps of the tiny VLA
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    # training: each episode's first early_frames frames visited early_repeat times per epoch (TrainConfig)
    early_frames: int = 0
    early_repeat: int = 1
    switch_repeat: int = 1  # training: each frame where the gripper label switches, visited this many times
    precision: str = "auto"  # training: auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 (fp32 if the CPU lacks bf16)
    save_every: int = 0  # training steps between checkpoints (a killed run resumes); 0: a tenth of the run
    keep_last: int = 2  # training checkpoints kept on disk, the oldest deleted first; 0 keeps all
    # training: auto (continue <out>/train; a changed schedule or dataset is refused, naming the differences) |
    # force (continue it even so) | never (refuse an out/train that holds a run)
    resume: str = "auto"
    # Counterfactual recording: each scene with up to this many of its goals (vla-record goals_per_scene)
    goals_per_scene: int = 1
    # Templates kept out of recording and used by the heldout evaluation: none | last | {task: template}
    holdout_templates: Any = None
    eval_episodes: int | None = None  # closed-loop episodes per task; None: 50 on ours, 10 on Meta-World
    eval_max_steps: int | None = None  # None: each task's own step limit; fewer for a quick look
    # Does the policy read its instruction? Modes evaluated on the language tasks beside the normal
    # evaluation: swap | blank | heldout (policies.evaluation.instruction), on the same held-out seeds.
    instruction_eval: list[str] = field(default_factory=list)
    instruction_episodes: int = 0  # episodes per task of those modes; 0: eval_episodes
    eval_split: str = "heldout"  # the evaluation's seeds: heldout (reported) | tune (policies/seeds.py)
    eval_num_envs: int = 2  # vectorized environments of the evaluation (spawned processes when > 1)
    n_action_steps: int = 5
    device: str = "auto"  # where the evaluation runs the policy: auto (cuda if available), cpu, cuda
    torch_threads: int = 2  # 0: torch's default
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        self.tasks = suites.resolve(list(self.tasks))  # one suite, or an error saying why
        self.eval_episodes = mw_eval.default_episodes(self.tasks, self.eval_episodes)
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"stages must be a non-empty subset of {list(STAGES)}, got {list(self.stages)}")
        if self.precision not in PRECISIONS:  # checked before the minutes of recording, not after
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.resume not in RESUME_MODES:
            raise ValueError(f"resume must be one of {RESUME_MODES}, got {self.resume!r}")
        if self.save_every < 0 or self.keep_last < 0:
            raise ValueError(
                f"save_every and keep_last must be >= 0, got {self.save_every}, {self.keep_last}"
            )
        if min(self.torch_threads, self.warmup_steps, self.early_frames) < 0:
            raise ValueError(
                "torch_threads, warmup_steps and early_frames must be >= 0, got "
                f"{self.torch_threads}, {self.warmup_steps}, {self.early_frames}"
            )
        for name in (
            "episodes_per_task",
            "workers",
            "steps",
            "batch_size",
            "eval_episodes",
            "eval_num_envs",
            "n_action_steps",
            "goals_per_scene",
            "early_repeat",
            "switch_repeat",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_max_steps is not None and self.eval_max_steps < 1:
            raise ValueError(f"eval_max_steps must be >= 1 or null, got {self.eval_max_steps}")
        self.instruction_eval = resolve_modes(self.instruction_eval) if self.instruction_eval else []
        if self.metaworld:
            self._check_metaworld()
        if NORMAL in self.instruction_eval:
            raise ValueError(
                "instruction_eval lists the modes beside normal, which the eval stage always runs"
            )
        if self.instruction_eval and not self.language_tasks:
            raise ValueError(
                f"instruction_eval needs a language task among tasks {self.tasks}; they are {sim.language_tasks()}"
            )
        sim.holdout_templates(self.holdout_templates)  # valid, or an error naming the templates
        if self.instruction_episodes < 0:
            raise ValueError(f"instruction_episodes must be >= 0, got {self.instruction_episodes}")
        if self.n_action_steps > self.model.inferred_actions:
            raise ValueError(
                f"n_action_steps ({self.n_action_steps}) must be <= the actions one inference returns "
                f"({self.model.inferred_actions}: model.infer_actions, else model.chunk_size)"
            )

    def _check_metaworld(self) -> None:
        """What Meta-World needs (docs/metaworld.md): one instruction and one goal per task, one camera."""
        suites.check_one_goal(self.goals_per_scene, self.holdout_templates)
        mw_eval.refuse_instruction_modes(
            self.instruction_eval, "instruction_eval", "leave instruction_eval empty"
        )
        self.model = replace(
            self.model, cameras=suites.metaworld_cameras(self.model.cameras, "model.cameras")
        )

    @property
    def metaworld(self) -> bool:
        return suites.suite_of(self.tasks) is suites.METAWORLD

    @property
    def language_tasks(self) -> list[str]:
        return [task for task in self.tasks if task in sim.language_tasks()]


ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


def _train_config(config: DemoConfig, dataset: Path) -> TrainConfig:
    return TrainConfig(
        model=config.model,
        dataset=str(dataset),
        out=str(Path(config.out) / "train"),
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_steps=min(config.warmup_steps, config.steps // 10),
        precision=config.precision,
        early_frames=config.early_frames,
        early_repeat=config.early_repeat,
        switch_repeat=config.switch_repeat,
        val_fraction=0.05,
        val_every=max(1, config.steps // 4),
        save_every=config.save_every or max(1, config.steps // 10),
        keep_last=config.keep_last,
        resume=config.resume,
        cache="memmap",
    )


def _record(config: DemoConfig, dataset: Path) -> None:
    # Meta-World: its one camera, at the size the model reads (our tasks: vla-record's 128 x 128, both cameras)
    suite = {"cameras": [mw.CAMERA], "image_size": list(config.model.image_size)}
    record(
        RecordConfig(
            task=config.tasks,
            episodes_per_task=config.episodes_per_task,
            noise=config.noise,
            out=str(dataset),
            workers=config.workers,
            goals_per_scene=config.goals_per_scene,
            holdout_templates=config.holdout_templates,
            **(suite if config.metaworld else {}),
        )
    )


def _evaluate(config: DemoConfig, run_dir: Path) -> dict:
    if not (run_dir / "checkpoints").is_dir():
        raise FileNotFoundError(f"no checkpoints under {run_dir}: run the train stage first")
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    eval_config = EvalConfig(
        checkpoint=str(run_dir),  # its checkpoints/last
        task=config.tasks,
        episodes_per_task=config.eval_episodes,
        split=config.eval_split,
        num_envs=config.eval_num_envs,
        n_action_steps=config.n_action_steps,
        device=device,
        torch_threads=config.torch_threads,
        max_steps=config.eval_max_steps,
        out=str(config.out),
    )
    document = run(eval_config)
    if config.instruction_eval:
        _add_instruction_modes(config, eval_config, document)
    return document


def _add_instruction_modes(config: DemoConfig, eval_config: EvalConfig, document: dict) -> None:
    """Evaluate ``config.instruction_eval`` on the language tasks and put them beside the normal results
    (``instruction_modes``, ``protocol.instruction``), so the report shows the instruction-following table."""
    tasks = config.language_tasks
    extra = evaluate_instruction_following(
        eval_config.checkpoint,
        tasks,
        config.instruction_episodes or config.eval_episodes,
        modes=config.instruction_eval,
        split=config.eval_split,
        num_envs=config.eval_num_envs,
        n_action_steps=config.n_action_steps,
        device=eval_config.device,
        holdout_templates=config.holdout_templates or "last",
        out=config.out,
    )
    normal = mode_document(NORMAL, {task: document["tasks"][task] for task in tasks})
    modes = {NORMAL: normal, **extra["instruction_modes"]}
    document["instruction_modes"] = modes
    document["protocol"]["instruction"] = {
        **extra["protocol"]["instruction"],
        "modes": list(modes),
        "top_level": NORMAL,
        "instruction_episodes": config.instruction_episodes or config.eval_episodes,
    }


def run_demo(config: DemoConfig) -> dict | None:
    """Run ``config.stages``; return the results document when the eval stage ran, else None."""
    import torch  # here, not at import: the app sets the OpenMP wait policy first

    from vla.train.loop import train

    out = Path(config.out)
    if {"record", "eval"} & set(config.stages):
        suites.check_installed(config.tasks)  # Meta-World: the make metaworld hint now, not after training
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    dataset, result = out / "data", None
    clock = _Clock(out / "demo_timing.json")
    if "record" in config.stages:
        with clock.stage("record_s"):
            _record(config, dataset)
    if "train" in config.stages:
        with clock.stage("train_s"):
            result = train(_train_config(config, dataset))
    if "eval" not in config.stages:
        return None
    with clock.stage("eval_s"):
        document = _evaluate(config, out / "train")
    timings = clock.seconds
    plot_training_curves(out / "train" / "tensorboard", out / "training_curves.png", CURVES)
    document["demo"] = {"timing": timings, "stages": list(config.stages)}
    if result is not None:
        document["demo"].update(train_validation=result.val, train_steps=result.step)
    (out / "results.json").write_text(json.dumps(document, indent=2))
    (out / "report.md").write_text(eval_report.report_markdown(document) + _demo_section(config, timings))
    return document


class _Clock:
    """Wall seconds per stage, kept in a file and summed over invocations, so a run that was interrupted
    and resumed reports the time it took in all (a stage killed outright loses its unfinished seconds)."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}

    @contextlib.contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:  # Ctrl-C included
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.seconds, indent=2))


def _demo_section(config: DemoConfig, timings: dict) -> str:
    minutes = sum(timings.values()) / 60
    parts = ", ".join(f"{name.removesuffix('_s')} {seconds:.0f} s" for name, seconds in timings.items())
    return (
        f"\n\n## Demo\n\nStages {', '.join(config.stages)}: {config.episodes_per_task} demonstrations per task, "
        f"{config.steps} training steps at batch {config.batch_size}, {config.eval_episodes} evaluation episodes "
        f"per task; {minutes:.1f} min in all, resumptions included ({parts}).\n\n![training curves](training_curves.png)\n"
    )


@hydra.main(config_path="pkg://configs", config_name="demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    config = OmegaConf.to_object(cfg)
    document = run_demo(config)
    if document is None:
        print(f"ran stages {config.stages} under {config.out}")
        return
    print(eval_report.report_markdown(document))
    print(f"\nwrote {config.out}/report.md, results.json, videos/, training_curves.png")


if __name__ == "__main__":
    main()
