"""Killing vla-record or vla-eval, even with SIGKILL, takes their spawned workers with it (no orphans).

Each test starts the app in a new session, so that it and every process it spawns (workers, multiprocessing's
resource tracker) share one process group, which still names them after they are orphaned and re-parented.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from policies.recording.app import RecordConfig, record
from vla.data.lock import DatasetLocked

EVALUATE_FOREVER = """
from policies.evaluation.evaluate import evaluate
evaluate("expert", ["PressButton"], 500, num_envs=2, env_options={"image_size": (32, 32)}, progress=False)
"""


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited while we looked
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


def _kill_and_expect_no_survivors(app: subprocess.Popen) -> None:
    app.send_signal(signal.SIGKILL)
    app.wait()
    try:
        _wait_for(lambda: not _group(app.pid), 10, "the workers to exit after their parent was killed")
    finally:
        for pid in _group(app.pid):  # do not leave them behind for the rest of the test session
            os.kill(pid, signal.SIGKILL)


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ, start_new_session=True
    )


def test_sigkilled_recorder_takes_its_workers_and_resource_tracker_with_it(tmp_path):
    out = tmp_path / "demos"
    app = _start(
        [
            sys.executable, "-m", "policies.recording.app", "task=PressButton", "episodes_per_task=200",
            f"out={out}", "image_size=[32,32]", "cameras=[agentview]", "workers=2",
        ]
    )  # fmt: skip
    try:
        # Two workers and the resource tracker, and the workers busy: an episode staged.
        _wait_for(lambda: len(_group(app.pid)) >= 4, 60, "two workers and the resource tracker")
        _wait_for(lambda: any((out / ".vla_staging").glob("*.mp4")), 60, "a staged episode")
        with pytest.raises(DatasetLocked, match=rf"{out}: another process \(pid {app.pid} on "):
            record(RecordConfig(task="PressButton", episodes_per_task=1, out=str(out), image_size=[32, 32]))
    except BaseException:
        app.kill()
        raise
    _kill_and_expect_no_survivors(app)


def test_sigkilled_evaluator_takes_its_environment_workers_with_it():
    app = _start([sys.executable, "-c", EVALUATE_FOREVER])
    try:
        _wait_for(lambda: len(_group(app.pid)) >= 3, 60, "the two environment workers")
        time.sleep(1.0)  # let them get past building their environments, into the episodes
    except BaseException:
        app.kill()
        raise
    _kill_and_expect_no_survivors(app)
