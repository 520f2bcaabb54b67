"""What the GPU check (bench/gpu_check.py) needs on a GPU machine that cannot download: ``make gpu-wheels``.

    .venv/bin/python bench/gpu_wheels.py gpu_bundle      # what `make gpu-wheels` runs (needs network)

The GPU machines this project borrows run Python 3.12 with torch, transformers, accelerate, peft,
tensorboard, opencv and pandas but not mujoco, gymnasium, hydra-core or PyAV, reach no network, and take a
working tree of at most 64 MiB. This writes, for CPython 3.12 on x86-64 Linux, into an ignored folder:

- ``wheels/``: the packages the stack imports that such a machine lacks (``WHEELS``), pinned, one version each,
  installed there with ``pip install --no-index --no-deps``;
- ``models/``: the config and tokenizer files of SmolLM2-135M-Instruct and all-MiniLM-L6-v2, not their
  weights (the LLM's 135M parameters are 270 MB in bf16, the encoder's 45 MB in fp16: with PyAV's 35 MB wheel
  they cannot travel), so the check builds both at random init, and says so;
- ``gl/``: Debian's EGL loader packages (libglvnd), for a machine image without libEGL (MuJoCo renders
  through it); skipped where there is no ``apt-get``.

It prints the size of each part and the total against ``LIMIT_MIB``, and fails above ``BUDGET_MIB``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LIMIT_MIB = 64  # the working tree that travels to a borrowed GPU machine, bundle included
BUDGET_MIB = 60  # the bundle's share: the tracked tree takes the rest
WHEEL_DIR, MODEL_DIR, GL_DIR = "wheels", "models", "gl"
PYTHON_VERSION = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)
# Import name -> the pinned wheel that provides it: the versions the CPU suite runs on, except mujoco 3.3.0,
# the oldest supported (make test-mujoco-min), one 6.6 MB wheel where 4.0.1 comes as four, 21 MB in all.
WHEELS = {
    "mujoco": "mujoco==3.3.0",
    "OpenGL": "PyOpenGL==3.1.10",  # mujoco's EGL context
    "gymnasium": "gymnasium==1.4.0",
    "farama_notifications": "Farama-Notifications==0.0.6",  # imported by gymnasium
    "hydra": "hydra-core==1.3.8",
    "omegaconf": "omegaconf==2.3.1",
    "antlr4": "antlr4-python3-runtime==4.9.3",  # hydra's and omegaconf's; an sdist only: built here
    "av": "av==18.1.0",
    "websockets": "websockets==17.4",  # vla-serve
}
SOURCE_ONLY = ("antlr4-python3-runtime",)  # pure Python, built into a py3-none-any wheel here
# The stack's other third-party imports, which those machines hold already (their image's package list).
DEVICE_HAS = (
    "torch", "numpy", "transformers", "tokenizers", "safetensors", "accelerate", "peft", "tensorboard",
    "PIL", "cv2", "matplotlib", "msgpack", "pyarrow", "tqdm", "yaml",
    "huggingface_hub",  # a dependency of transformers
)  # fmt: skip
# Imported by the stack, needed by no part of the check: the Franka extra and Meta-World's own venv.
NOT_CARRIED = ("franky", "metaworld")
MODEL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
SMOLLM2, MINILM = "smollm2-135m", "all-minilm-l6-v2"
GL_PACKAGES = ("libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_for(requirement: str, folder: Path) -> Path | None:
    """The wheel in ``folder`` that is ``name==version``, or None."""
    name, version = requirement.split("==")
    for path in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        parts = path.name.split("-")
        if normalized(parts[0]) == normalized(name) and parts[1] == version:
            return path
    return None


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    binary = [r for r in WHEELS.values() if r.split("==")[0] not in SOURCE_ONLY]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run(
        [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
         "--implementation", "cp", *platforms, "-d", str(folder), *binary],
        check=True,
    )  # fmt: skip
    built = [r for r in WHEELS.values() if r.split("==")[0] in SOURCE_ONLY and wheel_for(r, folder) is None]
    if built:
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), *built], check=True)
    wanted = {wheel_for(r, folder) for r in WHEELS.values()}
    if None in wanted:
        missing = [r for r in WHEELS.values() if wheel_for(r, folder) is None]
        raise SystemExit(f"gpu_bundle: pip left no wheel for {missing}")
    for stale in set(folder.glob("*.whl")) - wanted:  # two versions of one package stop the whole install
        stale.unlink()


def copy_model_files(folder: Path) -> None:
    """The two models' config and tokenizer files, from the local installs (``make venv``)."""
    from vla.model.backbone import smollm2_folder
    from vla.model.config import LanguageConfig, LLMConfig
    from vla.model.language import text_model_folder

    sources = {
        SMOLLM2: smollm2_folder(LLMConfig().cache_dir),  # converted from the GGUF once (~15 s), then cached
        MINILM: text_model_folder(LanguageConfig(encoder="minilm")),
    }
    for name, source in sources.items():
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        for file in MODEL_FILES:
            if (source / file).is_file():
                shutil.copy2(source / file, target / file)


def download_gl(folder: Path) -> str:
    """Debian's amd64 EGL loader packages; a note instead where apt-get is missing or fails."""
    if shutil.which("apt-get") is None:
        return "no apt-get here: no GL loaders carried (a machine without libEGL needs libegl1)"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as lists:
        Path(lists, "partial").mkdir()
        options = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
        update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True)
        fetch = subprocess.run(
            ["apt-get", *options, "download", *GL_PACKAGES], cwd=folder, capture_output=True, text=True
        )
    if update.returncode or fetch.returncode:
        return f"apt-get failed, no GL loaders carried: {(fetch.stderr or update.stderr).strip()[-300:]}"
    return f"GL loaders: {', '.join(GL_PACKAGES)}"


def mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def tracked_mib(repo: Path) -> float:
    """The tracked working tree, which travels beside the bundle."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True)
    paths = [repo / name for name in listed.stdout.decode().split("\0") if name]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="the bundle folder (ignored by git), e.g. gpu_bundle")
    args = parser.parse_args()
    download_wheels(args.folder / WHEEL_DIR)
    copy_model_files(args.folder / MODEL_DIR)
    print(download_gl(args.folder / GL_DIR))
    for part in (WHEEL_DIR, MODEL_DIR, GL_DIR):
        if (args.folder / part).exists():
            print(f"  {part + '/':8s} {mib(args.folder / part):6.1f} MiB")
    total = mib(args.folder)
    tree = tracked_mib(Path(__file__).resolve().parent.parent)
    print(
        f"gpu_bundle: {total:.1f} MiB (budget {BUDGET_MIB} MiB); with the tracked tree ({tree:.1f} MiB) "
        f"{total + tree:.1f} MiB of the {LIMIT_MIB} MiB limit"
    )
    if total > BUDGET_MIB:
        raise SystemExit(f"gpu_bundle: {total:.1f} MiB is over the {BUDGET_MIB} MiB budget")


if __name__ == "__main__":
    main()
