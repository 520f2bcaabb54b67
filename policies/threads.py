"""CPU threading for the apps that run torch next to simulator processes.

torch's OpenMP threads spin-wait between parallel regions. On a small machine where a second job holds the
other cores, the spinning threads fight it, and one forward pass of the tiny VLA grows from about 2 ms to about
200 ms (docs/benchmarks.md). On a quiet machine the passive policy costs instead: a training step 1.3x, a
closed-loop evaluation with two environment workers 1.7x (2026-12-07), so only the long-lived serving and
deployment processes, which share a machine with a robot's own software, ask for it. OpenMP reads it once, when
torch loads, so those apps call this before importing torch.
"""

from __future__ import annotations

import os
import sys
import warnings

WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_openmp() -> None:
    """Ask OpenMP to sleep, not spin, while idle (unless the user chose otherwise)."""
    if WAIT_POLICY in os.environ:
        return
    os.environ[WAIT_POLICY] = "PASSIVE"
    if "torch" in sys.modules:
        warnings.warn(
            f"torch was imported before {WAIT_POLICY}=PASSIVE was set, so OpenMP threads may spin-wait "
            f"and slow the simulator down; export {WAIT_POLICY}=PASSIVE before starting",
            stacklevel=2,
        )
