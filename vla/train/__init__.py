"""Training: the ``vla-train`` app, its loop, checkpoints and exact resume."""
