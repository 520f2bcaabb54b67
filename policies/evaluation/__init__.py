"""Closed-loop evaluation in simulation: ``vla-eval``, its environments and report, and ``vla-sim-report``."""
