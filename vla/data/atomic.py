"""Atomic, durable file replacement: a reader, a crash or a power cut sees the old file or the new one, never
half of either.

Each helper writes to a temporary file in the destination's directory (so ``os.replace`` stays on one file
system, where it is atomic) and renames it over the destination. The temporary file is fsynced before the
rename: file systems with delayed allocation (ext4, xfs) may otherwise put the rename on disk before the data,
so that a power cut leaves the new name on an empty or partial file. The directory is fsynced after it, since
the rename is a change to the directory, and one that is not on disk yet may be undone by a power cut. So once
``atomic_path`` returns, the new file survives a power cut; ``DatasetWriter`` writes info.json (its commit
point) last, after every other file of the episode has been made durable this way.
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


def fsync_path(path: str | Path) -> None:
    """Flush ``path`` (a file, or a directory: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str | Path) -> None:
    """``mkdir -p path``, each new directory made durable (its entry fsynced in its parent)."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_path(directory.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` durably, on error it is removed."""
    path = Path(path)
    make_dirs(path.parent)
    # A fresh name, not a mkstemp file: whoever writes it creates it, with the usual (umask) permissions.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=4) + "\n")


def write_parquet_atomic(path: str | Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
