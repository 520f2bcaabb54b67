"""``vla-demo`` (``make demo``): record demonstrations, train the tiny VLA, evaluate it closed-loop, report.

    vla-demo                                   # the CPU demo: about 15 minutes on 2 cores
    vla-demo tasks=[OpenDrawer,CloseDrawer,PressButton] steps=3000 out=runs/demo3

Writes under ``out``: ``data/`` (the LeRobotDataset), ``train/`` (checkpoints, TensorBoard), ``results.json``,
``report.md``, ``videos/`` (evaluation episodes) and ``training_curves.png``. Each stage is resumable: a second
run reuses the recorded episodes and the finished training.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from policies import eval_report
from policies.evaluate import EvalConfig, run
from policies.plots import plot_training_curves
from policies.record import RecordConfig, record
from policies.sim_report import resolve_tasks
from vla.model.config import ModelConfig
from vla.train.config import TrainConfig
from vla.train.loop import train

CURVES = ["train/loss", "train/token_accuracy", "val/token_accuracy", "val/l1", "train/lr"]


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    tasks: list[str] = field(default_factory=lambda: ["OpenDrawer", "CloseDrawer"])
    episodes_per_task: int = 60  # recorded demonstrations per task
    workers: int = 2  # recording processes
    steps: int = 1000  # training steps of the tiny VLA
    batch_size: int = 16
    lr: float = 1e-3
    eval_episodes: int = 50  # closed-loop episodes per task
    n_action_steps: int = 5
    torch_threads: int = 2
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        self.tasks = resolve_tasks(list(self.tasks))
        for name in (
            "episodes_per_task",
            "workers",
            "steps",
            "batch_size",
            "eval_episodes",
            "n_action_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


def _train_config(config: DemoConfig, dataset: Path) -> TrainConfig:
    return TrainConfig(
        model=config.model,
        dataset=str(dataset),
        out=str(Path(config.out) / "train"),
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_steps=min(50, config.steps // 10),
        val_fraction=0.05,
        val_every=max(1, config.steps // 4),
        save_every=config.steps,
        cache="memmap",
    )


def run_demo(config: DemoConfig) -> dict:
    out = Path(config.out)
    torch.set_num_threads(config.torch_threads)
    timings = {}
    started = time.perf_counter()
    dataset = out / "data"
    record(
        RecordConfig(
            task=config.tasks,
            episodes_per_task=config.episodes_per_task,
            out=str(dataset),
            workers=config.workers,
        )
    )
    timings["record_s"] = time.perf_counter() - started

    started = time.perf_counter()
    result = train(_train_config(config, dataset))
    timings["train_s"] = time.perf_counter() - started

    started = time.perf_counter()
    eval_config = EvalConfig(
        checkpoint=str(result.checkpoint),
        task=config.tasks,
        episodes_per_task=config.eval_episodes,
        n_action_steps=config.n_action_steps,
        torch_threads=config.torch_threads,
        out=str(out),
    )
    document = run(eval_config)
    timings["eval_s"] = time.perf_counter() - started
    plot_training_curves(out / "train" / "tensorboard", out / "training_curves.png", CURVES)
    document["demo"] = {"timing": timings, "train_validation": result.val, "train_steps": result.step}
    (out / "results.json").write_text(json.dumps(document, indent=2))
    report = eval_report.report_markdown(document)
    minutes = sum(timings.values()) / 60
    report += (
        f"\n\n## Demo\n\nRecorded {config.episodes_per_task} demonstrations per task, trained the tiny VLA for "
        f"{result.step} steps, evaluated {config.eval_episodes} episodes per task: {minutes:.1f} min in all "
        f"(record {timings['record_s']:.0f} s, train {timings['train_s']:.0f} s, evaluate {timings['eval_s']:.0f} s)."
        "\n\n![training curves](training_curves.png)\n"
    )
    (out / "report.md").write_text(report)
    return document


@hydra.main(config_path="pkg://configs", config_name="demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    config = OmegaConf.to_object(cfg)
    document = run_demo(config)
    print(eval_report.report_markdown(document))
    print(f"\nwrote {config.out}/report.md, results.json, videos/, training_curves.png")


if __name__ == "__main__":
    main()
