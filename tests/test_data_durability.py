"""DatasetWriter: commits are fsynced (files, then their directories, info.json last); one writer per dataset."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import synthetic_episode

from vla.data.atomic import TMP_SUFFIX
from vla.data.layout import INFO_PATH
from vla.data.lock import LOCK_NAME, DatasetLocked
from vla.data.meta import load_meta
from vla.data.writer import DatasetWriter

CAMERAS = ("agentview", "wrist")


def _staged(tmp_path, episode: int, length: int):
    return synthetic_episode(episode, length, CAMERAS, (32, 32), 17, 7, 10, tmp_path, seed=0)


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _temp_of(synced: Path, path: Path) -> bool:
    """Whether ``synced`` is one of ``atomic_path``'s temporary files for ``path``."""
    pattern = rf"\.{re.escape(path.name)}\.[0-9a-f]{{32}}{re.escape(TMP_SUFFIX)}"
    return synced.parent == path.parent and re.fullmatch(pattern, synced.name) is not None


def test_a_commit_fsyncs_each_file_before_its_rename_and_its_directory_after(
    make_dataset, tmp_path, monkeypatch
):
    # Tiny files and one file per chunk: the new episode goes to new files in new chunk directories.
    root = make_dataset(
        lengths=[4, 6], data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6, chunks_size=1
    ).resolve()
    writer = DatasetWriter.open(root)
    episode = _staged(tmp_path, 2, 5)
    before = _files(root)
    synced: list[Path] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    writer.add_episode(episode)
    monkeypatch.undo()

    changed = [path for path, data in _files(root).items() if before.get(path) != data]
    assert {path.relative_to(root).parts[0] for path in changed} == {"data", "videos", "meta"}
    assert root / INFO_PATH in changed
    last = {}  # changed file -> position of its directory's fsync after its rename
    for path in changed:
        wrote = [i for i, synced_path in enumerate(synced) if _temp_of(synced_path, path)]
        assert wrote, f"{path} was renamed into place without an fsync of its contents"
        after = [i for i in range(wrote[-1] + 1, len(synced)) if synced[i] == path.parent]
        assert after, f"{path.parent} was not fsynced after {path.name} was renamed into it"
        last[path] = after[0]
    for directory in {path.parent for path in changed} - {path.parent for path in before}:
        assert directory.parent in synced, f"new directory {directory} never made durable in its parent"
    info = last.pop(root / INFO_PATH)
    info_written = min(i for i, synced_path in enumerate(synced) if _temp_of(synced_path, root / INFO_PATH))
    assert all(position < info_written for position in last.values()), "info.json must be made durable last"
    assert info == max([info, *last.values()])


def test_a_second_writer_is_refused_until_the_first_closes(make_dataset, tmp_path):
    root = make_dataset(lengths=[3])
    first = DatasetWriter.open(root)
    with pytest.raises(
        DatasetLocked, match=rf"{re.escape(str(root))}: another process \(pid {os.getpid()} on "
    ):
        DatasetWriter.open(root)
    assert first.add_episode(_staged(tmp_path, 1, 4)) == 1  # the refused writer changed nothing
    first.close()
    with pytest.raises(ValueError, match="writer was closed"):
        first.add_episode(_staged(tmp_path, 2, 4))
    with DatasetWriter.open(root) as second:
        assert second.add_episode(_staged(tmp_path, 2, 4)) == 2
    assert load_meta(root).total_episodes == 3
    assert (root / LOCK_NAME).is_file()  # the lock file stays; the lock is not held by it existing


HOLD_THE_LOCK = """
import sys, time
from vla.data.writer import DatasetWriter
writer = DatasetWriter.open(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_a_killed_writer_leaves_no_stale_lock(make_dataset, tmp_path):
    root = make_dataset(lengths=[3])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(root)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DatasetLocked, match=rf"another process \(pid {holder.pid} on "):
            DatasetWriter.open(root)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with DatasetWriter.open(root) as writer:
        assert writer.add_episode(_staged(tmp_path, 1, 4)) == 1


def test_create_refuses_a_non_empty_directory_without_leaving_a_lock_file(tmp_path):
    other = tmp_path / "not-a-dataset"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        DatasetWriter.create(
            other, fps=10, cameras=CAMERAS, image_size=(32, 32), state_names=["s"], action_names=["a"]
        )
    with pytest.raises(ValueError, match=r"info\.json: file not found"):
        DatasetWriter.open(other)
    assert sorted(path.name for path in other.iterdir()) == ["notes.txt"]
