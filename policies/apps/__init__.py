"""The apps that compose the wings: ``vla-demo`` (record, train, evaluate) and ``vla-train``."""
