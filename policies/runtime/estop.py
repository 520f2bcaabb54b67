"""The software e-stop: SIGINT, SIGTERM or a ``trigger()`` from any thread stops the robot and the run.

The control loop waits for its next tick on the e-stop's event, so a trigger wakes it at once; it then calls
``robot.stop()`` and raises ``EStopped``, and ``vla-deploy`` exits with ``exit_code``: 128 + the signal's
number for a signal (130 for Ctrl-C, as shells report it), 1 otherwise. It is no substitute for the
hardware e-stop button.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class EStopped(RuntimeError):
    """The run was e-stopped; the robot has been told to stop."""

    def __init__(self, reason: str, exit_code: int):
        super().__init__(f"e-stop: {reason}")
        self.reason = reason
        self.exit_code = exit_code


class EStop:
    def __init__(self):
        self._event = threading.Event()
        self.reason: str | None = None
        self.signum: int | None = None

    def trigger(self, reason: str, signum: int | None = None) -> None:
        if not self._event.is_set():
            self.reason, self.signum = reason, signum
        self._event.set()

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 1

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True (at once) when the e-stop is triggered."""
        return self._event.wait(max(0.0, timeout))

    def check(self) -> None:
        if self.triggered:
            raise EStopped(self.reason or "stopped", self.exit_code)

    @contextmanager
    def on_signals(self, signals=(signal.SIGINT, signal.SIGTERM)) -> Iterator[EStop]:
        """Trigger on ``signals`` while inside (main thread only); the previous handlers come back after."""
        previous = {}

        def handle(signum, frame) -> None:
            self.trigger(f"signal {signal.Signals(signum).name}", signum)

        for signum in signals:
            previous[signum] = signal.signal(signum, handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
