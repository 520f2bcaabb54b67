"""Spawned worker processes exit when the process that spawned them dies, however it dies.

A worker of ``vla-record`` (a ``ProcessPoolExecutor`` process) or of ``vla-eval`` (an ``AsyncVectorEnv``
process) waits for work on a multiprocessing queue or pipe whose write end it holds itself, so it never sees
end-of-file when its parent is gone: a recorder or evaluator killed with SIGKILL used to leave its workers
running forever, and with them multiprocessing's resource tracker (which exits once every process holding
its pipe has, so it goes with the workers).

``exit_with_parent()``, called in the worker, starts a daemon thread that waits on multiprocessing's parent
sentinel: the read end of the pipe the parent spawned the worker through. Only the parent holds the other
end, and the kernel closes it when the parent dies, so the wait returns then (at once if the parent died
before the worker got this far: no race) and the thread ends the worker with ``os._exit``. It costs a
blocked thread and no polling. ``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the spawning *thread*
ends, which would kill the workers of a pool created from a short-lived thread, and it is Linux-only.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

# The exit status of a worker whose parent died (nobody is left to read it; it tells a process listing apart).
ORPHANED_EXIT_CODE = 70
_started = False


def exit_with_parent() -> None:
    """In a multiprocessing child: exit as soon as the parent process dies. Elsewhere, or twice: nothing."""
    global _started
    parent = multiprocessing.parent_process()
    if parent is None or _started:  # the main process (e.g. vla-record workers=1) has no parent to watch
        return
    threading.Thread(target=_exit_when_gone, args=(parent,), name="exit-with-parent", daemon=True).start()
    _started = True


def _exit_when_gone(parent) -> None:
    parent.join()  # returns when the sentinel pipe reports end-of-file: the parent is gone
    # _exit, not sys.exit: the main thread may be deep in a simulation step or blocked on the dead parent's
    # queue, and nothing of this process is worth cleaning up for a parent that no longer exists.
    os._exit(ORPHANED_EXIT_CODE)
