#!/usr/bin/env bash
# The GPU check in one command (docs/gpu.md, bench/gpu_check.py):
#   bash scripts/gpu_check.sh OUT             # on an NVIDIA GPU, at most 9 minutes; at most 8 files in OUT
#   bash scripts/gpu_check.sh OUT --dry-run   # the same stages on the CPU at tiny sizes
# PYTHON picks the interpreter (default python3). Before a GPU run it makes MuJoCo's EGL rendering possible
# on a bare machine: without libEGL, as root, it unpacks the loaders that `make gpu-wheels` put in
# gpu_bundle/gl; and it points glvnd at NVIDIA's EGL vendor file where the driver keeps it outside /usr.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONUNBUFFERED=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

if [[ " $* " != *" --dry-run "* ]]; then
  if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
    debs=("$repo"/gpu_bundle/gl/*.deb)
    if [[ $(id -u) == 0 && -e ${debs[0]} ]] && command -v dpkg >/dev/null; then
      echo "gpu_check: no libEGL here: unpacking gpu_bundle/gl/*.deb into / (as root, for a bare machine)"
      for deb in "${debs[@]}"; do dpkg -x "$deb" /; done
      ldconfig
    else
      echo "gpu_check: no libEGL here (install libegl1, or run as root with gpu_bundle/gl): the demo stage will fail"
    fi
  fi
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [[ -z ${__EGL_VENDOR_LIBRARY_FILENAMES:-} && ! -e /usr/share/glvnd/egl_vendor.d/10_nvidia.json && -e $vendor ]]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
  fi
fi
exec "${PYTHON:-python3}" "$repo/bench/gpu_check.py" "$@"
