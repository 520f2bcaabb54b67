"""Typed configuration of ``vla-train``. Hydra composes it (``configs/train.yaml`` + ``configs/model/*.yaml``)
against these schemas, registered in the ConfigStore, so a key that does not exist is a hydra error."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from vla.model.config import ModelConfig

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on CUDA, fp32 on CPU
RESUME_NEVER = "never"
RESUME_AUTO = "auto"  # continue from <out>/checkpoints/last when it exists
RESUME_FORCE = "force"  # auto, even when the schedule or the dataset changed (vla/train/resume.py)
RESUME_MODES = (RESUME_AUTO, RESUME_FORCE, RESUME_NEVER)  # or a checkpoint path


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # state_dim/action_dim come from the dataset
    dataset: str = MISSING  # a LeRobotDataset v3.0 directory
    out: str = MISSING  # the run directory: checkpoints/, tensorboard/
    steps: int = 10_000  # optimizer steps in the whole run (the schedule's length)
    batch_size: int = 8  # samples per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-4  # peak learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW's
    weight_decay: float = 0.01  # AdamW; never on norms, biases or embeddings
    warmup_steps: int = 200  # linear warmup, then cosine decay
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm; <= 0 disables clipping (the norm is still logged)
    seed: int = 0  # initialisation, shuffling and dropout
    num_workers: int = 0  # DataLoader worker processes (spawned)
    val_fraction: float = 0.1  # the last episodes, this fraction of them, are held out for validation
    val_every: int = 500  # steps between validations; 0: never
    val_batches: int = 20  # batches per validation; 0: the whole validation split
    save_every: int = 1000  # steps between checkpoints; 0: a tenth of the run; the last step is always saved
    keep_last: int = 0  # checkpoints kept on disk, the oldest deleted first; 0 keeps every one
    log_every: int = 10  # steps between TensorBoard scalars
    deterministic: bool = False  # torch.use_deterministic_algorithms, for bit-exact reruns and resumes
    # "auto": continue from <out>/checkpoints/last if there is one, refusing (with the differences named) a
    # changed schedule (steps, lr, warmup_steps, batch_size, ...), dataset (path or content) or data settings |
    # "force": continue from it even so | "never": refuse an out that holds a run | a checkpoint to continue
    # from (a checkpoint directory, a run directory, its checkpoints/ or checkpoints/last), with auto's checks
    resume: str = RESUME_AUTO
    cache: str | None = None  # VLADataset cache: None (decode videos), "memmap", or a directory
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU | fp32 | bf16
    # The first `early_frames` frames of every training episode are visited `early_repeat` times per epoch:
    # where the instruction decides the target, only the frames before the arm commits to one teach it
    # (docs/benchmarks.md, "Following the instruction"); 0 / 1: every frame once.
    early_frames: int = 0
    early_repeat: int = 1  # visits per epoch of each of those first frames
    # Each frame where the gripper label switches (the first frame of closing or opening) is visited this many
    # times per epoch: only there does the label contradict the gripper state ("still open: keep open").
    switch_repeat: int = 1

    def __post_init__(self):
        positive = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "log_every": self.log_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if min(self.early_repeat, self.switch_repeat) < 1:
            raise ValueError(
                "early_repeat and switch_repeat must be >= 1 (visits per epoch), got "
                f"{self.early_repeat}, {self.switch_repeat}"
            )
        for name in (
            "warmup_steps",
            "num_workers",
            "val_every",
            "val_batches",
            "save_every",
            "keep_last",
            "early_frames",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.resume:
            raise ValueError("resume must be 'auto', 'force', 'never' or a checkpoint directory")
        if self.cache is None and self.model.vision.kind == "efficientnet_lite0":
            raise ValueError(
                "model.vision.kind efficientnet_lite0 trains on its trunk's maps, cached beside the decoded "
                "frames: set cache=memmap (or a directory)"
            )
        self.betas = [float(b) for b in self.betas]

    @property
    def checkpoint_every(self) -> int:
        """Steps between checkpoints: ``save_every``, or a tenth of the run when it is 0. Resolved when read,
        not in ``__post_init__``: a configuration composed over defaults (vla-demo's ``train:``) sets
        ``steps`` after the defaults were built."""
        return self.save_every or max(1, self.steps // 10)


ConfigStore.instance().store(name="train_schema", node=TrainConfig)
