"""The control loop: latency-aware chunk execution, the watchdog, the e-stop, and the synchronous mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from policies.runtime.estop import EStopped
from policies.runtime.loop import ControlLoop, LoopConfig, PolicyStalled
from policies.runtime.robot import RobotLimits
from policies.runtime.safety import SafetyLayer
from policies.runtime.schedule import PolicyFailed

ROOT = Path(__file__).resolve().parents[1]


class RecordingRobot:
    """A robot that stands still and records every command it gets, with its time."""

    def __init__(self):
        self.limits = RobotLimits()
        self.events: list[tuple[float, str, np.ndarray | None]] = []
        self.changed = threading.Condition()

    def state(self) -> np.ndarray:
        return np.r_[0.5, 0.0, 0.3, 1, 0, 0, 0, 1, 0, 0.08, np.zeros(7)].astype(np.float32)

    def observe(self) -> dict:
        return {"images": {}, "state": self.state()}

    def _record(self, kind: str, action) -> None:
        with self.changed:
            self.events.append((time.monotonic(), kind, action))
            self.changed.notify_all()

    def act(self, action) -> None:
        self._record("act", np.array(action))

    def stop(self) -> None:
        self._record("stop", None)

    def home(self) -> None:
        pass

    def count(self, kind: str) -> int:
        return sum(event[1] == kind for event in self.events)

    def wait_for(self, kind: str, count: int, timeout: float = 10.0) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.count(kind) >= count, timeout)

    def executed(self) -> list[tuple[int, int]]:
        """(answer number, index) of every action received, decoded from the policies' actions below."""
        return [(round(a[0] * 100), round(a[1] * 100)) for _, kind, a in self.events if kind == "act"]


def chunk(answer: int, length: int) -> dict:
    """Action i of the policy's n-th answer says (n, i) in its first two entries (small: no safety cap)."""
    actions = np.zeros((length, 7), np.float32)
    actions[:, 0], actions[:, 1], actions[:, 6] = answer / 100, np.arange(length) / 100, -1
    return {"actions": actions}


class SlowPolicy:
    """Answers every call after ``delay_s``."""

    def __init__(self, delay_s: float, length: int):
        self.delay_s, self.length, self.calls = delay_s, length, 0

    def reset(self) -> None:
        pass

    def infer(self, obs: dict) -> dict:
        answer, self.calls = self.calls, self.calls + 1
        time.sleep(self.delay_s)
        return chunk(answer, self.length)


class LatePolicy:
    """Answers each call (but the first) just after the robot has received ``ticks_late`` more commands:
    an inference latency of exactly that many ticks, whatever the machine's load."""

    def __init__(self, robot: RecordingRobot, ticks_late: int, length: int):
        self.robot, self.ticks_late, self.length, self.calls = robot, ticks_late, length, 0

    def reset(self) -> None:
        pass

    def infer(self, obs: dict) -> dict:
        answer, self.calls = self.calls, self.calls + 1
        if answer:
            self.robot.wait_for("act", self.robot.count("act") + self.ticks_late)
        return chunk(answer, self.length)


def make_loop(robot, policy, **options) -> ControlLoop:
    return ControlLoop(robot, policy, SafetyLayer(robot.limits), LoopConfig(**options))


def test_late_chunks_drop_exactly_their_stale_actions_and_never_replay():
    robot = RecordingRobot()
    loop = make_loop(robot, LatePolicy(robot, 2, 10), rate_hz=50, n_action_steps=5, max_steps=30)
    run = loop.run_episode("go")
    # chunk n > 0 is asked for after tick 5n - 1 (for tick 5n) and arrives 2 ticks late: its actions 0 and 1
    # are dropped, actions 2..6 play at ticks 5n + 2 .. 5n + 6 (chunk 0 covers ticks 0..6).
    expected = [(0, i) for i in range(7)] + [(n, i) for n in range(1, 6) for i in range(2, 7)][:23]
    assert robot.executed() == expected
    assert len(set(robot.executed())) == 30 and robot.count("stop") == 0
    summary = run.summary()
    assert summary["dropped"] == 2 * 5 and summary["chunks"] == 6 and summary["holds"] == 0
    assert [t.dropped for t in run.ticks if t.latency_ms is not None] == [0, 2, 2, 2, 2, 2]


def test_a_policy_with_a_known_delay_drops_the_actions_whose_time_passed():
    """250 ms of latency at 10 Hz: each chunk takes effect 2 or 3 ticks after the tick it was computed for
    (2.5 periods, plus the loop's own delays; 4 on a badly loaded machine) and exactly the actions of those
    ticks are dropped. The exact count, independent of load, is the test above."""
    robot = RecordingRobot()
    run = make_loop(robot, SlowPolicy(0.25, 10), rate_hz=10, n_action_steps=5, max_steps=25).run_episode("go")
    executed = robot.executed()
    assert len(executed) == 25 and len(set(executed)) == 25  # one action per tick, none replayed
    effect = [(t.tick, t.chunk, t.index, t.dropped) for t in run.ticks if t.latency_ms is not None]
    for tick, answer, index, dropped in effect[1:]:
        assert 2 <= dropped <= 4 and index == dropped  # it starts right after its dropped actions
        assert executed[tick] == (answer, index)
        assert all(
            executed[t][0] == answer - 1 for t in range(tick - dropped, tick)
        )  # the old chunk played on
    assert all(250 <= t.latency_ms < 500 for t in run.ticks if t.latency_ms is not None)


def test_watchdog_holds_the_robot_within_one_period_when_the_policy_stalls():
    robot = RecordingRobot()

    class StallingPolicy:
        calls = 0

        def reset(self):
            pass

        def infer(self, obs):
            self.calls += 1
            if self.calls == 2:  # the second answer only comes once the robot has been held 5 times
                robot.wait_for("stop", 5)
            return chunk(self.calls - 1, 3)

    period = 0.05
    run = make_loop(robot, StallingPolicy(), rate_hz=1 / period, n_action_steps=3, max_steps=14).run_episode(
        "go"
    )
    kinds = [kind for _, kind, _ in robot.events]
    assert kinds[:3] == ["act"] * 3 and kinds[3:8] == ["stop"] * 5 and "act" in kinds[8:]
    last_act, first_stop = robot.events[2][0], robot.events[3][0]
    assert first_stop - last_act < period + 0.03  # held at the very next tick
    holds = [t for t in run.ticks if t.kind == "hold"]
    assert [t.tick for t in holds[:5]] == [3, 4, 5, 6, 7] and all(t.reasons == ("watchdog",) for t in holds)
    assert run.summary()["watchdog_holds"] == len(holds) >= 5


def test_a_policy_that_never_answers_ends_the_episode_with_the_robot_held():
    robot = RecordingRobot()
    forever = threading.Event()

    class Silent:
        calls = 0

        def reset(self):
            pass

        def infer(self, obs):
            self.calls += 1
            if self.calls > 1:
                forever.wait(30)
            return chunk(0, 2)

    loop = make_loop(robot, Silent(), rate_hz=20, n_action_steps=2, stall_timeout_s=0.3, max_steps=100)
    started = time.monotonic()
    with pytest.raises(PolicyStalled, match=r"no fresh action from the policy for 0\.3 s"):
        loop.run_episode("go")
    forever.set()
    assert time.monotonic() - started < 2
    assert robot.events[-1][1] == "stop" and robot.count("act") == 2


def test_a_failing_policy_stops_the_robot_and_names_the_error():
    robot = RecordingRobot()

    class Broken:
        calls = 0

        def reset(self):
            pass

        def infer(self, obs):
            self.calls += 1
            if self.calls == 3:
                raise ValueError("weights on fire")
            return chunk(self.calls, 2)

    for mode in (True, False):
        with pytest.raises(PolicyFailed, match="ValueError: weights on fire"):
            make_loop(robot, Broken(), rate_hz=100, n_action_steps=2, async_inference=mode).run_episode("go")
        assert robot.events[-1][1] == "stop"


def test_stop_from_another_thread_stops_the_robot_at_once():
    robot = RecordingRobot()
    loop = make_loop(robot, SlowPolicy(0.0, 1000), rate_hz=20, max_steps=1000)
    threading.Timer(0.3, loop.stop).start()
    with pytest.raises(EStopped, match="stop\\(\\) called") as stopped:
        loop.run_episode("go")
    assert stopped.value.exit_code == 1
    assert robot.events[-1][1] == "stop" and 3 <= robot.count("act") <= 9


def test_synchronous_mode_plays_n_action_steps_then_asks_again():
    robot = RecordingRobot()
    policy = SlowPolicy(0.03, 4)  # slower than a period: in sync mode that costs no action and no hold
    run = make_loop(
        robot, policy, rate_hz=100, n_action_steps=3, async_inference=False, max_steps=10
    ).run_episode("go")
    assert robot.executed() == [(n, i) for n in range(4) for i in range(3)][:10]
    assert policy.calls == 4 and robot.count("stop") == 0
    assert run.summary()["dropped"] == 0 and run.summary()["holds"] == 0


def test_loop_config_names_bad_values():
    with pytest.raises(ValueError, match="rate_hz must be in"):
        LoopConfig(rate_hz=0)
    with pytest.raises(ValueError, match="n_action_steps and max_steps must be >= 1"):
        LoopConfig(n_action_steps=0)


CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from test_runtime_loop import RecordingRobot, SlowPolicy, make_loop
from policies.runtime.estop import EStopped

class Loud(RecordingRobot):
    def _record(self, kind, action):
        super()._record(kind, action)
        print(kind, flush=True)

loop = make_loop(Loud(), SlowPolicy(0.0, 10_000), rate_hz=20, max_steps=10_000)
with loop.estop.on_signals():
    try:
        loop.run_episode("go")
    except EStopped as error:
        print("estopped", error.reason, flush=True)
        sys.exit(error.exit_code)
print("finished without an e-stop", flush=True)
"""


def test_sigint_stops_the_robot_and_exits_non_zero():
    command = [sys.executable, "-c", CHILD.format(tests=str(ROOT / "tests"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        for line in child.stdout:  # wait until the loop runs
            if line.strip() == "act":
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    lines = out.split()
    assert child.returncode == 128 + signal.SIGINT, err
    assert "estopped" in out and "SIGINT" in out
    assert lines[lines.index("estopped") - 1] == "stop"  # the robot was stopped before the loop exited
