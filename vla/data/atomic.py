"""Atomic file replacement: a reader (or a crash) sees the old file or the new one, never half of either.

Each helper writes to a temporary file in the destination's directory (so ``os.replace`` stays on one file
system, where it is atomic) and renames it over the destination.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TMP_SUFFIX = ".tmp"  # leftovers of an interrupted write end in this; DatasetWriter.open() removes them


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name, not a mkstemp file: whoever writes it creates it, with the usual (umask) permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=4) + "\n")


def write_parquet_atomic(path: str | Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
