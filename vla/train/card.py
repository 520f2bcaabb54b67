"""The model card: ``README.md`` in every checkpoint directory, as a Hugging Face model card.

``vla-train`` writes it with each checkpoint (staged with the weights, so it is never missing from a
published checkpoint): the dataset (as named, where it resolved to, its fingerprint, episodes and tasks), the
recipe's key settings, the steps, the machine and the time. ``vla-eval`` and ``vla-demo`` append one section
per evaluation (``append_section``; the table itself: ``policies/evaluation/card.py``). The front matter is
the Hub's model-card metadata (library, tags, and the dataset when it is a Hub id).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from vla.data.atomic import atomic_path
from vla.data.hub import looks_like_repo_id
from vla.machine import machine
from vla.train.config import TrainConfig

CARD = "README.md"
EVALUATIONS = "## Evaluations"
TASKS_LISTED = 12  # a card lists this many instructions, then counts the rest


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


@dataclass(frozen=True)
class TrainingCard:
    """What the cards of one training process say; ``markdown(step)`` renders a checkpoint's card."""

    config: TrainConfig  # model section fitted to the dataset
    fingerprint: dict  # vla.train.resume.dataset_fingerprint: path, totals, meta_sha256
    tasks: list[str]  # the dataset's task strings (instructions)
    fps: float
    episodes: tuple[int, int]  # (training, validation) episodes
    processes: int
    device: str  # e.g. "cpu", "cuda (NVIDIA H100 80GB HBM3)"
    started: float  # time.time() when this process started training
    start_step: int  # the step it started from (> 0: resumed)

    def markdown(self, step: int, now: float | None = None) -> str:
        return "\n\n".join(
            [self._front_matter(), self._title(step), self._data(), self._recipe(), self._training(step, now)]
        )

    def _front_matter(self) -> str:
        dataset = str(self.config.dataset)
        lines = ["---", "library_name: vla-stack", "pipeline_tag: robotics"]
        lines.append("tags: [robotics, vision-language-action, lerobot]")
        if looks_like_repo_id(dataset) and not Path(dataset).exists():
            lines.append(f"datasets: [{dataset}]")
        return "\n".join([*lines, "---"])

    def _title(self, step: int) -> str:
        model = self.config.model
        return (
            f"# VLA checkpoint, step {step} of {self.config.steps}\n\n"
            f"A vision-language-action policy ({model.llm.name} LLM, {model.vision.kind} vision) trained by "
            "vla-train (vla-stack). Use this folder as `checkpoint=` of vla-eval, vla-serve or vla-deploy; "
            "`train_config.json` holds every setting."
        )

    def _data(self) -> str:
        found = self.fingerprint
        shown = [f"`{task}`" for task in self.tasks[:TASKS_LISTED]]
        more = len(self.tasks) - len(shown)
        tasks = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        train, val = self.episodes
        rows = [
            ("dataset", f"`{self.config.dataset}`"),
            ("resolved to", f"`{found['path']}`"),
            ("fingerprint (meta sha256)", f"`{found['meta_sha256']}`"),
            ("episodes", f"{found['total_episodes']} ({train} training, {val} validation)"),
            ("frames", f"{found['total_frames']} at {self.fps:g} fps"),
            (f"tasks ({len(self.tasks)})", tasks),
        ]
        return "## Data\n\n" + _table(rows)

    def _recipe(self) -> str:
        c, m = self.config, self.config.model
        model = (
            f"LLM {m.llm.name}"
            + (f" (LoRA rank {m.lora_rank})" if m.lora_rank else "")
            + f", vision {m.vision.kind}, language encoder {m.language.encoder}, connector {m.connector.kind}, "
            f"cameras {list(m.cameras)} at {m.image_size[0]}x{m.image_size[1]}, "
            f"state {m.state_dim}-D, action {m.action_dim}-D in {m.num_bins} bins, chunks of {m.chunk_size}, "
            f"{m.decoding} decoding"
        )
        optimisation = (
            f"{c.steps} steps of batch {c.batch_size} x {c.grad_accum} accumulated x {self.processes} "
            f"processes, AdamW lr {c.lr:g} (warm-up {c.warmup_steps}, cosine to x{c.min_lr_ratio:g}), "
            f"weight decay {c.weight_decay:g}, grad clip {c.grad_clip:g}, precision {c.precision}, seed {c.seed}"
        )
        sampling = (
            f"validation fraction {c.val_fraction:g}, early frames {c.early_frames} x{c.early_repeat}, "
        )
        sampling += f"gripper switches x{c.switch_repeat}, frame cache {c.cache or 'none'}"
        rows = [("model", model), ("optimisation", optimisation), ("sampling", sampling)]
        return "## Recipe\n\n" + _table(rows)

    def _training(self, step: int, now: float | None) -> str:
        now = time.time() if now is None else now
        cpu = machine()
        resumed = f", resumed from step {self.start_step}" if self.start_step else ""
        rows = [
            ("steps", f"{step} of {self.config.steps}{resumed}"),
            ("machine", f"{cpu['cpu']}, {cpu['cores']} cores; device {self.device}"),
            ("software", f"python {platform.python_version()}, torch {_torch_version()}"),
            (
                "time",
                f"started {utc(self.started)}, this checkpoint {utc(now)} "
                f"({(now - self.started) / 60:.1f} min in this process)",
            ),
        ]
        return "## Training\n\n" + _table(rows)


def _torch_version() -> str:
    import torch

    return torch.__version__


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def write_card(directory: Path, text: str) -> Path:
    path = Path(directory) / CARD
    with atomic_path(path) as tmp:
        tmp.write_text(text.rstrip("\n") + "\n")
    return path


def append_section(directory: str | Path, section: str) -> Path:
    """Append ``section`` (markdown) under the card's evaluations heading; a checkpoint without a card (one
    trained before cards were written) gets a card holding only its evaluations."""
    path = Path(directory) / CARD
    text = path.read_text() if path.is_file() else f"# VLA checkpoint {Path(directory).name}\n"
    if EVALUATIONS not in text:
        text = text.rstrip("\n") + f"\n\n{EVALUATIONS}\n"
    return write_card(directory, text.rstrip("\n") + "\n\n" + section.strip("\n"))
