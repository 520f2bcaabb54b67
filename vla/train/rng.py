"""Seeding, and the random number generators' state as plain data: torch's as uint8 tensors (for a
safetensors file), numpy's and Python's as JSON. Nothing here is ever pickled."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

TORCH_CPU = "torch"
CUDA_PREFIX = "cuda."  # + device index


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, numpy and torch (all devices); in deterministic mode also make torch refuse
    nondeterministic kernels, so that a rerun or a resume reproduces a run bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; read when the first handle is created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    """(torch states {name: uint8 tensor}, {"numpy": ..., "python": ...} as JSON-able data)."""
    tensors = {TORCH_CPU: torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{CUDA_PREFIX}{index}"] = state
    numpy_state = np.random.get_state(legacy=False)  # MT19937: key (624,) uint32, pos, gauss cache
    version, internal, gauss = random.getstate()
    plain = {
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": numpy_state["state"]["key"].tolist(),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    return tensors, plain


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict) -> None:
    """Undo ``capture_rng``. CUDA states are restored for the devices both runs have."""
    torch.set_rng_state(tensors[TORCH_CPU])
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            state = tensors.get(f"{CUDA_PREFIX}{index}")
            if state is not None:
                torch.cuda.set_rng_state(state, index)
    numpy_state = plain["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": np.asarray(numpy_state["key"], dtype=np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    python_state = plain["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss"]))
