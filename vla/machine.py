"""The machine a number was measured on: the CPU model and its cores (training runs and evaluations both say)."""

from __future__ import annotations

import os
import platform


def machine() -> dict[str, object]:
    """The CPU the numbers (and the wall times beside them) were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), cpu)
    except OSError:  # not Linux
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}
