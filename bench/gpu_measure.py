"""The GPU check's two measurements (bench/gpu_check.py) of the smollm2-135m VLA preset
(configs/model/smollm2-135m.yaml): training throughput with model FLOPs utilisation, and inference latency.

Both build the preset with the LLM the check chose (``LLMSource``: a name or folder, and whether its weights
are pretrained; speed does not depend on them) and the plan's overrides, on the plan's device;
``environment`` reads the machine they run on.

- Training: the trainer's step (vla.train.loop.autocast in bf16, forward, backward, AdamW) on the fixed
  synthetic batch of bench/train_throughput.py, at a batch that fills the card: two probe steps give the
  memory per sample, and the largest power of two that fits ``MEMORY_SHARE`` of the card is taken (out of
  memory there: half of it, once, and said so). Model FLOPs are counted, not estimated: torch's
  FlopCounterMode over one forward + backward (matrix products, convolutions, attention), per sample; MFU is
  that times samples/s over the card's dense bf16 peak (``PEAK_TFLOPS``, from the device's name).
- Inference: ``VLAPolicy.infer_batch`` in bf16 (the LLM's weights in bf16, as ``precision=bf16`` serves),
  per decoding and batch: chunks/s from the median call, and the calls' latency percentiles.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from inference import fake_observations, fake_stats, preset  # bench/ siblings: run from bench/
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode
from train_throughput import training_batch

from policies.vla_policy import VLAPolicy
from vla.model.config import DECODINGS, ModelConfig
from vla.model.vla import VLA
from vla.train.loop import autocast

PRESET = "smollm2-135m"
VERSIONS = ("mujoco", "av", "gymnasium", "hydra-core", "transformers", "accelerate", "numpy")  # reported
# Dense bf16 tensor-core peaks from NVIDIA's data sheets, by a substring of torch's device name; first match.
PEAK_TFLOPS = (
    ("H200 NVL", 835.0), ("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
    ("A100", 312.0),
)  # fmt: skip
MEMORY_SHARE = 0.85  # of the card's memory the chosen batch may fill, by the probes' estimate
MAX_BATCH = 1024
PROBE_BATCHES = (16, 64)  # far apart: the allocator's rounding is small beside their difference
WARMUP_STEPS = 3
MIN_CALLS = 3


@dataclass(frozen=True)
class LLMSource:
    name: str  # llm.name: a preset or a local Hugging Face folder
    pretrained: bool  # False: the folder's architecture at random init
    label: str  # what the summary calls it


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak in TFLOP/s, or None for a card not in ``PEAK_TFLOPS`` (or a CPU)."""
    return next((peak for key, peak in PEAK_TFLOPS if key in device_name), None)


def fill_batch(fixed_bytes: float, per_sample_bytes: float, total_bytes: float) -> int:
    """The largest power of two up to ``MAX_BATCH`` whose estimated memory fits ``MEMORY_SHARE`` of the card."""
    batch = 1
    while batch < MAX_BATCH and fixed_bytes + 2 * batch * per_sample_bytes <= MEMORY_SHARE * total_bytes:
        batch *= 2
    return batch


def with_oom_retry(measure, batch: int) -> tuple[dict, str | None]:
    """``measure(batch)``; out of device memory, once more at half the batch: (result, what happened)."""
    try:
        return measure(batch), None
    except torch.cuda.OutOfMemoryError:
        if batch < 2:
            raise
        gc.collect()
        torch.cuda.empty_cache()
        return measure(batch // 2), f"out of memory at batch {batch}: measured at {batch // 2}"


def model_config(llm: LLMSource, overrides: tuple[str, ...], **changes) -> ModelConfig:
    """The preset, the plan's ``key=value`` overrides, the chosen LLM and ``changes``."""
    base = OmegaConf.structured(preset(PRESET))
    config = OmegaConf.to_object(OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides))))
    return dataclasses.replace(config, llm=dataclasses.replace(config.llm, name=llm.name), **changes)


def build(config: ModelConfig, llm: LLMSource, device: str) -> VLA:
    torch.manual_seed(0)
    stats = fake_stats(config.state_dim, config.action_dim)
    return VLA(config, stats, pretrained=llm.pretrained).to(device)


def training(llm: LLMSource, overrides: tuple[str, ...], device: str, batch: int | None, seconds: float):
    """Samples/s, LLM tokens/s, model TFLOP/s and MFU of bf16 training; ``batch`` None fills the card."""
    config = model_config(llm, overrides)
    vla = build(config, llm, device).train()
    optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=1e-4)
    amp = autocast("bf16", torch.device(device))
    batches: dict[int, dict] = {}

    def step(size: int) -> None:
        data = batches.setdefault(size, training_batch(config, size, device))
        with amp:
            loss = vla.loss(data)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    flops, tokens = _count(vla, training_batch(config, 2, device), amp)
    cuda = device == "cuda"
    if batch is None:
        batch = fill_batch(*_probe_memory(step), torch.cuda.get_device_properties(0).total_memory)

    def measure(size: int) -> dict:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = _timed(lambda: step(size), seconds, cuda, warmup=WARMUP_STEPS)
        memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        return {"batch": size, "step_s": statistics.median(times), "steps": len(times), "peak_gib": memory}

    result, note = with_oom_retry(measure, batch)
    samples = result["batch"] / result["step_s"]
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_tflops(name)
    achieved = flops * samples / 1e12
    result.update(
        model=llm.label, oom=note, llm_tokens_per_sample=tokens, gflops_per_sample=flops / 1e9,
        samples_per_s=samples, tokens_per_s=samples * tokens, model_tflops=achieved, peak_tflops=peak,
        mfu=achieved / peak if peak else None,
    )  # fmt: skip
    return result


def _count(vla: VLA, batch: dict, amp) -> tuple[float, int]:
    """(model FLOPs of one forward + backward per sample, tokens the LLM reads per sample)."""
    lengths = []
    hook = vla.llm.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    counter = FlopCounterMode(display=False)
    with counter:
        with amp:
            loss = vla.loss(batch)["loss"]
        loss.backward()
    hook.remove()
    vla.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch["instruction"]), lengths[0]


def _probe_memory(step) -> tuple[float, float]:
    """(fixed bytes, bytes per sample) of a training step, from its peak at the two ``PROBE_BATCHES``."""
    peaks = []
    for size in PROBE_BATCHES:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        step(size)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated())
    small, large = PROBE_BATCHES
    per_sample = max(peaks[1] - peaks[0], 1) / (large - small)
    return peaks[0] - small * per_sample, per_sample


def _timed(call, seconds: float, cuda: bool, warmup: int = 1) -> list[float]:
    """Seconds of each timed ``call``: after ``warmup`` untimed ones, at least ``MIN_CALLS``, until ``seconds``."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < MIN_CALLS or sum(times) < seconds:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def inference(llm: LLMSource, overrides: tuple[str, ...], device: str, batches, seconds: float) -> list:
    """Per decoding and batch: chunks/s (batch / median call) and the calls' latency percentiles, bf16."""
    rows = []
    for decoding in DECODINGS:
        config = model_config(llm, overrides, decoding=decoding)
        vla = build(config, llm, device).eval()
        vla.llm.to(torch.bfloat16)
        policy = VLAPolicy.from_model(vla)
        for size in batches:
            call = functools.partial(policy.infer_batch, fake_observations(config, size))
            times = np.array(_timed(call, seconds, device == "cuda")) * 1000
            p50, p90, p99 = (float(v) for v in np.percentile(times, [50, 90, 99]))
            rows.append(
                {"decoding": decoding, "batch": size, "chunks_per_s": size * 1000 / float(np.median(times)),
                 "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "calls": len(times)}
            )  # fmt: skip
        policy = vla = None  # freed before the next decoding's model is built
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def environment(device: str, installed: list[str], labels: dict) -> dict:
    """The machine, its GPU (on CUDA), the versions that matter, and ``installed`` and ``labels`` as given."""
    cuda = device == "cuda"
    info = {
        "python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count(),
        "cpu": _cpu_name(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None, "installed_from_bundle": installed,
        "mujoco_gl": os.environ.get("MUJOCO_GL"), **labels,
        "packages": {name: _version(name) for name in VERSIONS},
    }  # fmt: skip
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(), gpu_memory_gib=props.total_memory / 2**30,
            multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(), driver=_driver(),
        )  # fmt: skip
    return info


def _cpu_name() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
    done = subprocess.run(query, capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or None
