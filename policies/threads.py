"""CPU threading for the apps that run torch next to simulator processes.

torch's OpenMP threads spin-wait between parallel regions. On a small machine where environment workers or
a second job hold the other cores, the spinning threads fight them, and one forward pass of the tiny VLA grows
from about 2 ms to about 200 ms (docs/benchmarks.md). A passive wait policy costs nothing measurable when the
cores are free. OpenMP reads it once, when torch loads, so the apps call this before importing torch.
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
