"""``vla-demo`` (``make demo``): record demonstrations, train a VLA, evaluate it closed-loop, report.

    vla-demo                                   # the CPU demo (configs/demo.yaml): under 20 minutes on 2 cores
    vla-demo task=[OpenDrawer,CloseDrawer,PressButton] train.steps=3000 out=runs/demo3
    vla-demo --config-name suite_smollm2 stages=[record]       # the GPU recipe: record on a CPU machine,
    vla-demo --config-name suite_smollm2 stages=[train,eval]   # then train and evaluate on the GPU
    vla-demo --config-name metaworld_mt10_cpu                  # Meta-World MT10 (in .venv-metaworld)

Its options (``DemoConfig``): the demo's own (``out``, ``task``, ``stages``, ...) and the three apps'
configurations nested, each with the demo's defaults: ``record:`` (vla-record's), ``train:`` (vla-train's,
the model at ``train.model``) and ``eval:`` (vla-eval's), as in ``train.batch_size=32`` or
``eval.num_envs=4``.

Writes under ``out``: ``data/`` (the LeRobotDataset), ``train/`` (checkpoints, TensorBoard), ``results.json``,
``report.md``, ``videos/`` (evaluation episodes) and ``training_curves.png``, and appends the evaluation to
the checkpoint's model card (``train/checkpoints/<step>/README.md``). Each stage is resumable: a second
run reuses the recorded episodes and the finished training. ``stages`` runs a subset, in order.

``task`` may instead name Meta-World (``metaworld/mt10``, a task id or a list; not mixed with our tasks):
its experts record ``corner2`` at the model's image size, the model reads ``[corner2]`` (set so when
``train.model.cameras`` is our default), and vla-eval runs Meta-World's protocol (10 episodes per task
unless ``eval.episodes_per_task`` says otherwise), the results' ``metaworld`` section included
(docs/metaworld.md).
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

import sim
from policies import cli, suites
from policies.evaluation import report as eval_report
from policies.evaluation.card import append_evaluation
from policies.evaluation.evaluate import EvalConfig, evaluate_instruction_following, run
from policies.evaluation.instruction import NORMAL, mode_document, resolve_modes
from policies.recording.app import RecordConfig, record
from policies.reports.plots import plot_training_curves
from vla.model.config import ModelConfig
from vla.train.config import RESUME_MODES, TrainConfig

CURVES = ["train/loss", "train/token_accuracy", "val/token_accuracy", "val/l1", "val/goal_l1", "train/lr"]
STAGES = ("record", "train", "eval")
# Old option names -> the names every app uses, accepted with a notice for one more release (policies.cli).
RENAMED = {"tasks": "task"}
# The fields of record:, train: and eval: that the demo fills in, and from what (its error says): each keeps
# the placeholder it has in demo_record(), demo_train() and demo_eval(), or the value the demo gives it.
FILLED_FROM = {
    "task": "the demo's task",
    "out": "a path under out",
    "dataset": "out/data",
    "checkpoint": "out/train",
    "val_every": "a quarter of train.steps",
    "instruction": "normal; the other modes are instruction_eval",
    "holdout_templates": "record.holdout_templates",
    "cameras": "Meta-World's one camera",
    "image_size": "on Meta-World train.model.image_size",
}


def demo_record(**changes) -> RecordConfig:
    """vla-record's options with the demo's defaults, and ``changes``."""
    return RecordConfig(**{"out": "<out>/data", "episodes_per_task": 60, "workers": 2, **changes})


def demo_train(**changes) -> TrainConfig:
    """vla-train's options with the demo's defaults, and ``changes``: a short run, checkpointed every tenth
    of it (save_every 0) with the last two kept, 5% of the episodes for validation, the frames cached."""
    defaults = {
        "dataset": "<out>/data",
        "out": "<out>/train",
        "steps": 1000,
        "batch_size": 16,
        "lr": 1e-3,
        "warmup_steps": 50,
        "save_every": 0,
        "keep_last": 2,
        "val_fraction": 0.05,
        "cache": "memmap",
    }
    return TrainConfig(**{**defaults, **changes})


def demo_eval(**changes) -> EvalConfig:
    """vla-eval's options with the demo's defaults (on the GPU when there is one), and ``changes``. Four
    environments: one batched forward pass for four of them, 1.35x faster than two on 2 cores."""
    return EvalConfig(
        **{"checkpoint": "<out>/train", "out": "<out>", "num_envs": 4, "device": "auto", **changes}
    )


@functools.cache
def _placeholders() -> dict:
    return {"record": demo_record(), "train": demo_train(), "eval": demo_eval()}


@dataclass
class DemoConfig:
    """The demo's own options, and vla-record's, vla-train's and vla-eval's configurations nested.

    The model is ``train.model`` (``config.model`` reads it): it is TrainConfig's, so ``train:`` reads as a
    vla-train configuration (configs/train.yaml's keys) and the recipe holds one copy of it; recording
    (Meta-World's image size) and evaluation (the actions one inference returns) read it from there. A
    preset picks a model file with ``- model@train.model: smollm2-135m`` in its defaults list.

    The demo fills in the fields of ``FILLED_FROM`` from its own options and refuses them set otherwise:
    the tasks, the paths under ``out``, ``train.val_every``, ``eval.instruction``,
    ``eval.holdout_templates``, and on Meta-World ``record.cameras`` and ``record.image_size``. It also
    clamps ``train.warmup_steps`` to a tenth of the run, takes ``eval.episodes_per_task`` null as the
    protocol's (50 on our tasks, 10 on Meta-World's), ``eval.device`` auto as cuda when there is one, and
    ``eval.torch_threads`` 0 as ``torch_threads``.
    """

    out: str = "runs/demo"  # data/, train/, results.json, report.md, videos/, training_curves.png
    # Our tasks ("all", a name or a list) or Meta-World ids (metaworld/mt10, metaworld/reach-v3, ...), not
    # both
    task: Any = field(default_factory=lambda: ["OpenDrawer", "CloseDrawer"])
    stages: list[str] = field(
        default_factory=lambda: list(STAGES)
    )  # a subset of record, train, eval, run in order
    torch_threads: int = 2  # the demo's CPU threads (training and evaluation); 0: torch's default
    # Does the policy read its instruction? Modes evaluated on the language tasks beside the normal
    # evaluation: swap | blank | heldout | wordings (policies.evaluation.instruction), on the same
    # held-out seeds.
    instruction_eval: list[str] = field(default_factory=list)
    instruction_episodes: int = 0  # episodes per task of those modes; 0: the evaluation's
    record: RecordConfig = field(default_factory=demo_record)
    train: TrainConfig = field(default_factory=demo_train)
    eval: EvalConfig = field(default_factory=demo_eval)

    def __post_init__(self):
        self.task = suites.resolve(self.task)  # one suite, or an error saying why
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"stages must be a non-empty subset of {list(STAGES)}, got {list(self.stages)}")
        if self.train.resume not in RESUME_MODES:  # the demo continues its own run only
            raise ValueError(f"train.resume must be one of {RESUME_MODES}, got {self.train.resume!r}")
        if min(self.torch_threads, self.instruction_episodes) < 0:
            raise ValueError(
                "torch_threads and instruction_episodes must be >= 0, got "
                f"{self.torch_threads}, {self.instruction_episodes}"
            )
        self._check_filled()
        self.instruction_eval = resolve_modes(self.instruction_eval) if self.instruction_eval else []
        self._check_suite()
        if NORMAL in self.instruction_eval:
            raise ValueError(
                "instruction_eval lists the modes beside normal, which the eval stage always runs"
            )
        if self.instruction_eval and not self.language_tasks:
            raise ValueError(
                f"instruction_eval needs a language task in task {self.task}; they are {sim.language_tasks()}"
            )
        if self.eval.n_action_steps > self.model.inferred_actions:
            raise ValueError(
                f"eval.n_action_steps ({self.eval.n_action_steps}) must be <= the actions one inference "
                f"returns ({self.model.inferred_actions}: train.model.infer_actions, else train.model.chunk_size)"
            )
        self.record_config()  # the recording's options checked against the tasks now, not after minutes

    def _filled(self) -> dict[str, dict]:
        """The values the demo gives the fields it fills in (``FILLED_FROM``), per group."""
        out = Path(self.out)
        record = {"task": self.task, "out": str(out / "data")}
        # What the suite records for this model (Meta-World: corner2 at the model's size; ours: nothing).
        record.update(self.suite.record_options(self.model.image_size))
        train = {
            "dataset": str(out / "data"),
            "out": str(out / "train"),
            "val_every": max(1, self.train.steps // 4),
        }
        held = self.record.holdout_templates or "last"  # heldout evaluates what recording kept out
        evaluation = {"checkpoint": str(out / "train"), "task": self.task, "out": self.out}
        evaluation.update(instruction=[NORMAL], holdout_templates=held)
        return {"record": record, "train": train, "eval": evaluation}

    def _check_filled(self) -> None:
        """Refuse a filled-in field set to anything else, which the demo would otherwise overwrite unseen."""
        for group, values in self._filled().items():
            config, placeholder = getattr(self, group), _placeholders()[group]
            for name, value in values.items():
                if getattr(config, name) not in (getattr(placeholder, name), value):
                    raise ValueError(
                        f"{group}.{name} is filled in by the demo ({FILLED_FROM[name]}): leave it unset, "
                        f"got {getattr(config, name)!r}"
                    )

    def _check_suite(self) -> None:
        """What the tasks' suite needs of the demo's options (Meta-World, docs/metaworld.md: one instruction
        per task, one camera; the recording's options are checked by RecordConfig): its instruction modes, its
        evaluation options and the cameras the model reads, set to its own where it says so."""
        suite = self.suite
        suite.check_instruction_modes(
            self.instruction_eval, "instruction_eval", "leave instruction_eval empty"
        )
        suite.check_evaluation(self.eval.instruction, self.eval.env_options(), self.eval.camera_map)
        cameras = suite.model_cameras(self.model.cameras, "train.model.cameras")
        if cameras != list(self.model.cameras):
            self.train = replace(self.train, model=replace(self.model, cameras=cameras))

    @property
    def model(self) -> ModelConfig:
        """``train.model``, which recording and evaluation read too."""
        return self.train.model

    @property
    def suite(self) -> suites.Suite:
        """The suite of ``task`` (``policies.suites``)."""
        return suites.of(self.task)

    @property
    def language_tasks(self) -> list[str]:
        return [task for task in self.task if task in sim.language_tasks()]

    @property
    def eval_episodes(self) -> int:
        """Closed-loop episodes per task: ``eval.episodes_per_task``, or the protocol's."""
        return self.suite.episodes(self.eval.episodes_per_task)

    def record_config(self) -> RecordConfig:
        """What the record stage runs."""
        return replace(self.record, **self._filled()["record"])

    def train_config(self) -> TrainConfig:
        """What the train stage runs: the warmup at most a tenth of the run; checkpoints as ``save_every``
        says, resolved here so that the run's train_config.json names the interval."""
        train = self.train
        warmup = min(train.warmup_steps, train.steps // 10)
        filled = self._filled()["train"]
        return replace(train, **filled, warmup_steps=warmup, save_every=train.checkpoint_every)

    def eval_config(self) -> EvalConfig:
        """What the eval stage runs: the checkpoint the train stage wrote, on the device asked for (auto:
        cuda when there is one), with the demo's threads unless ``eval.torch_threads`` says otherwise."""
        import torch

        device = self.eval.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        threads = self.eval.torch_threads or self.torch_threads
        filled = self._filled()["eval"]
        return replace(
            self.eval, **filled, episodes_per_task=self.eval_episodes, device=device, torch_threads=threads
        )


ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


def _evaluate(config: DemoConfig) -> dict:
    eval_config = config.eval_config()
    if not (Path(eval_config.checkpoint) / "checkpoints").is_dir():
        raise FileNotFoundError(f"no checkpoints under {eval_config.checkpoint}: run the train stage first")
    document = run(eval_config, card=False)  # the card gets the whole document, instruction modes too
    if config.instruction_eval:
        _add_instruction_modes(config, eval_config, document)
    return document


def _add_instruction_modes(config: DemoConfig, eval_config: EvalConfig, document: dict) -> None:
    """Evaluate ``config.instruction_eval`` on the language tasks and put them beside the normal results
    (``instruction_modes``, ``protocol.instruction``), so the report shows the instruction-following table."""
    tasks = config.language_tasks
    episodes = config.instruction_episodes or eval_config.episodes_per_task
    extra = evaluate_instruction_following(
        eval_config.checkpoint,
        tasks,
        episodes,
        modes=config.instruction_eval,
        split=eval_config.split,
        num_envs=eval_config.num_envs,
        n_action_steps=eval_config.n_action_steps,
        device=eval_config.device,
        holdout_templates=eval_config.holdout_templates,
        out=config.out,
    )
    normal = mode_document(NORMAL, {task: document["tasks"][task] for task in tasks})
    modes = {NORMAL: normal, **extra["instruction_modes"]}
    document["instruction_modes"] = modes
    document["protocol"]["instruction"] = {
        **extra["protocol"]["instruction"],
        "modes": list(modes),
        "top_level": NORMAL,
        "instruction_episodes": episodes,
    }


def run_demo(config: DemoConfig) -> dict | None:
    """Run ``config.stages``; return the results document when the eval stage ran, else None."""
    import torch  # here, not at import: the app sets the OpenMP wait policy first

    from vla.train.loop import train

    out = Path(config.out)
    if {"record", "eval"} & set(config.stages):
        config.suite.check_installed()  # Meta-World: the make metaworld hint now, not after training
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    result = None
    clock = _Clock(out / "demo_timing.json")
    if "record" in config.stages:
        with clock.stage("record_s"):
            record(config.record_config())
    if "train" in config.stages:
        with clock.stage("train_s"):
            result = train(config.train_config())
    if "eval" not in config.stages:
        return None
    with clock.stage("eval_s"):
        document = _evaluate(config)
    timings = clock.seconds
    plot_training_curves(out / "train" / "tensorboard", out / "training_curves.png", CURVES)
    document["demo"] = {"timing": timings, "stages": list(config.stages)}
    if result is not None:
        document["demo"].update(train_validation=result.val, train_steps=result.step)
    (out / "results.json").write_text(json.dumps(document, indent=2))
    append_evaluation(document, "vla-demo", (out / "results.json").resolve())
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
        f"\n\n## Demo\n\nStages {', '.join(config.stages)}: {config.record.episodes_per_task} demonstrations per task, "
        f"{config.train.steps} training steps at batch {config.train.batch_size}, {config.eval_episodes} evaluation episodes "
        f"per task; {minutes:.1f} min in all, resumptions included ({parts}).\n\n![training curves](training_curves.png)\n"
    )


@cli.app("vla-demo", "demo", renamed=RENAMED)
def main(config: DemoConfig) -> None:
    document = run_demo(config)
    if document is None:
        print(f"ran stages {config.stages} under {config.out}")
        return
    print(eval_report.report_markdown(document))
    print(f"\nwrote {config.out}/report.md, results.json, videos/, training_curves.png")


if __name__ == "__main__":
    main()
