"""One writer per dataset: an exclusive lock on ``<root>/.lock``, held for as long as a ``DatasetWriter`` is open.

A second writer (another ``vla-record`` on the same ``out=``, say) would otherwise repair away, or overwrite,
the first one's half-written episode and wipe its staged videos. The lock is ``flock``: the kernel drops it
with the holder's last file descriptor, so a writer that is killed (even by SIGKILL) never leaves a stale lock
behind, and the file itself can stay. It is hidden, so LeRobot (which reads the files it knows by name)
and ``vla-dataset validate`` ignore it. The holder writes its pid and host into it, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import weakref
from pathlib import Path

from vla.data.layout import DatasetError

LOCK_NAME = ".lock"


class DatasetLocked(DatasetError):
    """Another process holds the dataset's lock."""


class DatasetLock:
    """An exclusive lock on the dataset at ``root``, from ``DatasetLock(root)`` until ``release()``.

    Garbage collection or the end of the process releases it too.
    """

    def __init__(self, root: str | Path):
        self.path = Path(root) / LOCK_NAME
        try:
            # Python opens files close-on-exec: spawned workers do not inherit (and so do not hold) the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise DatasetError(self.path, f"cannot open the lock file ({err.strerror})") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DatasetLocked(
                Path(root),
                f"another process ({holder}) is writing this dataset; wait for it to finish or stop it, "
                "or write to another directory",
            ) from None
        except OSError as err:
            os.close(fd)
            raise DatasetError(self.path, f"cannot lock ({err.strerror})") from err
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._close = weakref.finalize(self, os.close, fd)

    @property
    def held(self) -> bool:
        return self._close.alive

    def release(self) -> None:
        """Unlock (closing the descriptor drops the flock); releasing twice is harmless."""
        self._close()

    def __enter__(self) -> DatasetLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'pid 123 on host' from the lock file, or a vaguer phrase while the holder has not written it yet."""
    words = os.pread(fd, 256, 0).decode(errors="replace").split()
    if len(words) == 2 and words[0].isdigit():
        return f"pid {words[0]} on {words[1]}"
    return "pid unknown"
