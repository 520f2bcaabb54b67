"""``vla-train``: train a VLA on a LeRobotDataset v3.0.

    vla-train dataset=data/demos model=tiny out=runs/tiny steps=2000
    vla-train dataset=data/demos model=smollm2-135m out=runs/smol model.lora_rank=16 batch_size=4 grad_accum=4
    vla-train dataset=data/demos model=tiny model.llm.name=/path/to/hf/causal-lm out=runs/mine
    accelerate launch --multi_gpu --num_processes 2 -m vla.train.app dataset=... model=... out=...

``model`` picks ``configs/model/<name>.yaml`` (a ``vla.model.config.ModelConfig``); its state_dim and
action_dim come from the dataset. Re-running the same command continues from ``<out>/checkpoints/last``
(``resume=auto``); ``resume=never`` refuses an ``out`` that already holds a run.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

import vla.train.config  # noqa: F401  (registers the schema "train_schema" in hydra's ConfigStore)
from vla.train.loop import train


@hydra.main(config_path="pkg://configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    config = OmegaConf.to_object(cfg)
    result = train(config)
    val = ", ".join(f"{k} {v:.4f}" for k, v in result.val.items())
    print(f"step {result.step}; checkpoint {result.checkpoint}" + (f"; validation: {val}" if val else ""))


if __name__ == "__main__":
    main()
