"""``vla-train``: train a VLA on a LeRobotDataset v3.0, optionally with closed-loop evaluation in simulation.

    vla-train dataset=data/demos model=tiny out=runs/tiny steps=2000
    vla-train dataset=data/demos out=runs/tiny closed_loop.every=500 closed_loop.task=[OpenDrawer]
    vla-train dataset=data/demos model=smollm2-135m out=runs/smol model.lora_rank=16 batch_size=4 grad_accum=4
    accelerate launch --multi_gpu --num_processes 2 -m policies.apps.train dataset=... model=... out=...

``model`` picks ``configs/model/<name>.yaml`` (a ``vla.model.config.ModelConfig``); its state_dim and
action_dim come from the dataset. Re-running the same command continues from ``<out>/checkpoints/last``
(``resume=auto``), and refuses, naming the differences, a changed schedule, dataset or data settings, which
would train another run (``vla/train/resume.py``); ``resume=force`` continues even so; ``resume=never``
refuses an ``out`` that already holds a run; ``resume=<checkpoint>`` continues from a checkpoint directory, a
run directory, its ``checkpoints/`` or its ``checkpoints/last`` file.

The trainer itself is ``vla.train.loop.train``; this app adds what needs the simulator, which vla/ never
imports: every ``closed_loop.every`` steps (and at the last one) the model in training is evaluated
closed-loop, and its success rates go to TensorBoard (``eval/mean_success``, ``eval/success/<task>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from tqdm import tqdm

from policies import cli
from policies.seeds import TUNE, episode_seeds
from sim import resolve_tasks
from vla.train.config import TrainConfig

# Old option names -> the names every app uses, accepted with a notice for one more release (policies.cli).
RENAMED = {"closed_loop.tasks": "closed_loop.task"}


@dataclass
class ClosedLoopConfig:
    every: int = 0  # optimizer steps between closed-loop evaluations (the last step too); 0: never
    task: Any = field(
        default_factory=list
    )  # "all", a simulator task or a list of them; needed when every > 0
    episodes_per_task: int = 10  # per evaluation
    num_envs: int = 1  # vectorized environments (spawned processes when > 1)
    n_action_steps: int = 5  # receding horizon: actions executed per predicted chunk
    max_steps: int | None = None  # episode step limit; None: each task's own
    # Episode i of each task uses seed + i, the same at every evaluation: tuning seeds (policies/seeds.py),
    # because choosing a checkpoint by these numbers is tuning; report with vla-eval on the held-out split.
    seed: int = TUNE.start

    def __post_init__(self):
        for name in ("every", "episodes_per_task", "num_envs", "n_action_steps"):
            low = 0 if name == "every" else 1
            if getattr(self, name) < low:
                raise ValueError(f"closed_loop.{name} must be >= {low}, got {getattr(self, name)}")
        if self.every > 0:
            if not self.task:
                raise ValueError("closed_loop.every > 0 needs closed_loop.task=... (all, a task or a list)")
            self.task = resolve_tasks(self.task)
        episode_seeds(TUNE.name, self.episodes_per_task, self.seed)  # inside the tuning split


@dataclass
class TrainAppConfig(TrainConfig):
    closed_loop: ClosedLoopConfig = field(
        default_factory=ClosedLoopConfig
    )  # periodic success rates in simulation


ConfigStore.instance().store(name="train_app_schema", node=TrainAppConfig)


class ClosedLoopEval:
    """A ``vla.train.loop`` step hook: closed-loop success of the model in training, every ``every`` steps.
    The model is evaluated where it is (GPU or CPU), with the same seeds each time, so the curve compares
    like with like."""

    def __init__(self, config: ClosedLoopConfig, last_step: int):
        self.config = config
        self.last_step = last_step

    def __call__(self, step: int, model) -> dict[str, float] | None:
        from policies.evaluation import report as eval_report
        from policies.evaluation.evaluate import evaluate

        if step % self.config.every and step != self.last_step:
            return None
        c = self.config
        document = evaluate(
            model,
            c.task,
            c.episodes_per_task,
            c.seed,
            c.num_envs,
            split=TUNE.name,
            n_action_steps=c.n_action_steps,
            env_options={"max_steps": c.max_steps},
            progress=False,
        )
        rates = ", ".join(f"{task} {entry['success_rate']:.0%}" for task, entry in document["tasks"].items())
        tqdm.write(f"step {step}: closed-loop success {document['mean_success']:.0%} ({rates})")
        return eval_report.scalars(document)


def train_with_eval(config: TrainAppConfig):
    from vla.train.loop import train  # torch: after the OpenMP wait policy is set

    hooks = [ClosedLoopEval(config.closed_loop, config.steps)] if config.closed_loop.every else []
    return train(config, hooks=hooks)


@cli.app("vla-train", "train", renamed=RENAMED)
def main(config: TrainAppConfig) -> None:
    result = train_with_eval(config)
    val = ", ".join(f"{k} {v:.4f}" for k, v in result.val.items())
    print(f"step {result.step}; checkpoint {result.checkpoint}" + (f"; validation: {val}" if val else ""))
    if "eval/mean_success" in result.hooks:
        print(f"closed-loop success at the last step: {result.hooks['eval/mean_success']:.0%}")


if __name__ == "__main__":
    main()
