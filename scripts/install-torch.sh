#!/usr/bin/env bash
# Install torch into the given venv without ever pulling a multi-GB CUDA build on a machine that has no
# NVIDIA GPU. Idempotent: returns at once when a suitable torch is already there.
set -euo pipefail
venv=${1:-.venv}
version=${TORCH_VERSION:-2.13.0}
py="$venv/bin/python"

if "$py" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$version' else 1)" 2>/dev/null; then
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing torch==$version (CUDA build)"
  "$py" -m pip install -q "torch==$version"
  exit 0
fi
# No GPU. Ask pip which file it would take; a local or index CPU build ("+cpu") is installed as is,
# otherwise the CPU build comes from PyTorch's own CPU index.
report=$(mktemp)
"$py" -m pip install -q --dry-run --no-deps --ignore-installed --report "$report" "torch==$version" >/dev/null 2>&1 || true
if grep -q '+cpu' "$report" 2>/dev/null; then
  echo "No NVIDIA GPU: installing torch==$version (CPU build found by pip)"
  "$py" -m pip install -q "torch==$version"
else
  echo "No NVIDIA GPU: installing torch==$version from PyTorch's CPU index"
  "$py" -m pip install -q "torch==$version" --index-url https://download.pytorch.org/whl/cpu \
    --extra-index-url https://pypi.org/simple
fi
rm -f "$report"
