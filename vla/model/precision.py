"""Which float type the model computes in: bf16 where the hardware has it natively, fp32 elsewhere.

On a CPU without native bf16 (AVX512-BF16 or AMX) bf16 is emulated and slower than fp32, so ``auto`` picks
fp32 there; on a GPU with bf16 it picks bf16. torch is imported inside the functions, so that a torch-free
caller (vla-eval's config) can check a precision name.
"""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def native_bf16(device) -> bool:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def inference_dtype(precision: str, device):
    """The torch dtype: ``auto``, bf16 where ``native_bf16(device)``, else fp32; ``fp32`` and ``bf16`` as asked."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return torch.float32
