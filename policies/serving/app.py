"""``vla-serve``: a checkpoint (or the scripted expert) behind a websocket, for openpi's client or ours.

    vla-serve checkpoint=runs/tiny                                  # ws://127.0.0.1:8000, this machine only
    VLA_SERVE_API_KEY=$KEY vla-serve checkpoint=runs/tiny host=0.0.0.0   # other machines: a key is required
    vla-serve policy=expert port=0                                   # tests: a free port, printed at start
    vla-serve checkpoint=DIR key_map='{observation/image: images/wrist, prompt: instruction}'

Options: ``configs/serve.yaml``, validated by ``ServeConfig``; the protocol: docs/serving.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from policies import cli
from policies.loading import EXPERT, load_policy
from policies.serving.client import API_KEY_ENV
from policies.serving.keys import check_key_map
from policies.serving.server import PolicyServer, check_host
from policies.threads import passive_openmp
from vla.model.precision import PRECISIONS

POLICIES = ("checkpoint", EXPERT)


@dataclass
class ServeConfig:
    checkpoint: str | None = None  # a checkpoint directory, or a vla-train run (its checkpoints/last)
    policy: str = "checkpoint"  # "checkpoint" | "expert" (reads the privileged actions in each observation)
    host: str = "127.0.0.1"  # anything but loopback requires api_key
    port: int = 8000  # 0: a free port, printed at start
    # None: $VLA_SERVE_API_KEY if set; clients send "Authorization: Api-Key <key>"
    api_key: str | None = field(default=None, repr=False)
    max_frame_mb: float = 16.0  # larger frames are refused (close code 1009) before they are read
    max_batch: int = 32  # most requests answered by one infer_batch
    key_map: Any = None  # {client key: observation key}; None: policies.serving.keys.DEFAULT_KEY_MAP
    camera_map: Any = None  # model camera -> observation camera (as vla-eval's); None: identity
    device: str = "cpu"  # where the checkpoint runs
    precision: str = "fp32"  # the checkpoint computes in fp32 | bf16 | auto (bf16 where native)
    torch_threads: int = 0  # CPU threads of the forward passes; 0: torch's default (one per core)

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if (self.policy == EXPERT) == (self.checkpoint is not None):
            raise ValueError("give exactly one of checkpoint=DIR and policy=expert")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        check_host(self.host, self.api_key)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0-65535, got {self.port}")
        if not self.max_frame_mb > 0 or self.max_batch < 1 or self.torch_threads < 0:
            raise ValueError(
                f"need max_frame_mb > 0, max_batch >= 1, torch_threads >= 0; got {self.max_frame_mb}, "
                f"{self.max_batch}, {self.torch_threads}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.key_map is not None:
            self.key_map = check_key_map(self.key_map)
        if self.camera_map is not None:
            if not isinstance(self.camera_map, dict):
                raise ValueError(
                    f"camera_map must map model cameras to observation cameras, got {self.camera_map!r}"
                )
            self.camera_map = {str(slot): str(camera) for slot, camera in self.camera_map.items()}


ConfigStore.instance().store(name="serve_schema", node=ServeConfig)


def make_policy(config: ServeConfig):
    spec = EXPERT if config.policy == EXPERT else config.checkpoint
    return load_policy(spec, camera_map=config.camera_map, device=config.device, precision=config.precision)


def build_server(config: ServeConfig) -> PolicyServer:
    if config.torch_threads:
        import torch

        torch.set_num_threads(config.torch_threads)
    return PolicyServer(
        lambda: make_policy(config),
        host=config.host,
        port=config.port,
        api_key=config.api_key,
        max_frame_mb=config.max_frame_mb,
        key_map=config.key_map,
        max_batch=config.max_batch,
        kind=config.policy,
    )


def run(config: ServeConfig) -> None:
    server = build_server(config)

    def announce(port: int) -> None:
        # One line a supervisor (or a test that asked for port=0) can read the address from.
        meta = server.metadata
        print(
            f"vla-serve: {meta['policy']} {meta['checkpoint'] or ''} on ws://{config.host}:{port} "
            f"(cameras {meta['cameras']}, actions {meta['chunk_size']}x{meta['action_dim']}; "
            f"health: http://{config.host}:{port}/healthz)",
            flush=True,
        )

    server.run(announce)


@cli.app("vla-serve", "serve")
def main(config: ServeConfig) -> None:
    passive_openmp()
    run(config)


if __name__ == "__main__":
    main()
