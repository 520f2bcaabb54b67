"""The fixed-rate control loop: a policy's chunks played out on a robot, through the safety layer.

Each tick (``rate_hz``, 10 Hz by default) sends one action (or a hold) through ``SafetyLayer``. Two modes:

- asynchronous (``async_inference=True``, the default): the next chunk is computed in a worker thread while
  the current one plays. A request goes out once the current chunk has played ``n_action_steps`` ticks (or
  would run out); the answer takes over at the first tick after it arrives, its stale actions dropped
  (``policies.runtime.schedule``). A tick that no chunk covers is a watchdog hold: ``robot.stop()`` at that
  tick, so the robot holds within one control period of its last fresh action. With no fresh action for
  ``stall_timeout_s`` the episode ends with ``PolicyStalled``.
- synchronous (``async_inference=False``): observe, ask, play ``n_action_steps`` actions at the rate, ask
  again: exactly ``vla-eval``'s receding horizon. The clock restarts after each answer (the robot holds at
  its last target while the policy thinks), so a simulated episode matches ``vla-eval`` step for step.

Each episode starts from a chunk computed while the robot stands still (nothing is dropped from it). The
e-stop (``policies.runtime.estop``) is checked at every wait: on a trigger the robot is stopped and
``EStopped`` is raised. Any other failure (the policy raising, stalling) also stops the robot first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from policies.runtime.estop import EStop
from policies.runtime.safety import Command, SafetyLayer
from policies.runtime.schedule import ChunkSchedule, InferenceRequest, Planned
from policies.runtime.timing import TickRecord, summary

log = logging.getLogger(__name__)

# Called at every tick with the observation the tick acted on and what was sent (recording).
FrameHook = Callable[[dict, Command], None]


class PolicyStalled(RuntimeError):
    """No fresh action for ``stall_timeout_s``: the robot is held and the episode abandoned."""


@dataclass
class LoopConfig:
    rate_hz: float = 10.0
    n_action_steps: int = 5  # sync: actions played per chunk; async: ticks between requests
    async_inference: bool = True
    max_steps: int = 600  # ticks per episode, holds included
    stall_timeout_s: float = 5.0  # no fresh action for this long: PolicyStalled

    def __post_init__(self):
        if not 0 < self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in (0, 1000], got {self.rate_hz}")
        if self.n_action_steps < 1 or self.max_steps < 1:
            raise ValueError(
                f"n_action_steps and max_steps must be >= 1, got {self.n_action_steps}, {self.max_steps}"
            )
        if not self.stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {self.stall_timeout_s}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass
class EpisodeRun:
    ticks: list[TickRecord]
    steps: int  # actions sent (holds excluded)
    done: bool  # the robot said the episode is over (simulated robots)
    success: bool | None  # the robot's verdict, None when it gives none

    def summary(self) -> dict:
        return {"steps": self.steps, "done": self.done, "success": self.success, **summary(self.ticks)}


class _Episode:
    """What one episode's ticks share."""

    def __init__(self, index: int, instruction: str, obs: dict, on_frame: FrameHook | None):
        self.index, self.instruction, self.obs, self.on_frame = index, instruction, obs, on_frame
        self.ticks: list[TickRecord] = []
        self.steps = 0
        self.t0 = 0.0
        self.schedule = ChunkSchedule()
        self.request: InferenceRequest | None = None


class ControlLoop:
    def __init__(
        self, robot, policy, safety: SafetyLayer, config: LoopConfig, estop: EStop | None = None, clock=None
    ):
        self.robot, self.policy, self.safety, self.config = robot, policy, safety, config
        self.estop = estop or EStop()
        self.clock = clock or time.monotonic
        self.current: _Episode | None = None  # the episode running (or the last one), its ticks so far

    def stop(self, reason: str = "stop() called") -> None:
        """E-stop from any thread: the loop stops the robot at once and raises ``EStopped``."""
        self.estop.trigger(reason)

    def run_episode(
        self, instruction: str, on_frame: FrameHook | None = None, episode: int = 0
    ) -> EpisodeRun:
        """Run one episode from the robot's current state until it is done or ``max_steps`` ticks pass."""
        run = self.current = _Episode(episode, instruction, {}, on_frame)
        try:
            self.estop.check()
            self.policy.reset()
            run.obs = self._observe(instruction)
            self.safety.reset(run.obs["state"])
            if self.config.async_inference:
                self._run_async(run)
            else:
                self._run_sync(run)
        except BaseException as error:
            log.warning("stopping the robot: %s", error or type(error).__name__)
            self.robot.stop()  # whatever went wrong, the robot holds first
            raise
        self._settle(run)
        done = bool(getattr(self.robot, "done", False))
        success = getattr(self.robot, "success", None)
        return EpisodeRun(run.ticks, run.steps, done, None if success is None else bool(success))

    # -- the two modes -------------------------------------------------------------------------------------
    def _run_async(self, run: _Episode) -> None:
        config = self.config
        first = self._answer(InferenceRequest(self.policy, run.obs, 0, self.clock))
        run.schedule.add(first.chunk(), 0)
        latency, dropped = first.latency_s, 0
        run.t0 = self.clock()
        last_fresh = run.t0
        for tick in range(config.max_steps):
            jitter = self._wait_until(run.t0 + tick * config.period_s)
            if run.request is not None and run.request.finished:
                request, run.request = run.request, None
                dropped = run.schedule.add(request.chunk(), request.start_tick)
                latency = request.latency_s
            planned = run.schedule.action_at(tick)
            if planned is not None:
                last_fresh = self.clock()
            elif self.clock() - last_fresh > config.stall_timeout_s:
                raise PolicyStalled(f"no fresh action from the policy for {config.stall_timeout_s} s")
            self._tick(run, tick, planned, jitter, latency, dropped)
            latency, dropped = None, 0
            if self._robot_done() or tick + 1 >= config.max_steps:
                return
            due = tick + 1 - run.schedule.start >= config.n_action_steps or not run.schedule.remaining(
                tick + 1
            )
            if run.on_frame is not None or (due and run.request is None):
                run.obs = self._observe(run.instruction)
            if due and run.request is None:
                run.request = InferenceRequest(self.policy, run.obs, tick + 1, self.clock)

    def _run_sync(self, run: _Episode) -> None:
        config, tick = self.config, 0
        while tick < config.max_steps:
            request = self._answer(InferenceRequest(self.policy, run.obs, tick, self.clock))
            chunk = request.chunk()
            run.schedule.add(chunk, tick)
            run.t0 = self.clock() - tick * config.period_s  # the clock restarts after the policy answered
            latency = request.latency_s
            for _ in range(min(config.n_action_steps, len(chunk))):
                jitter = self._wait_until(run.t0 + tick * config.period_s)
                self._tick(run, tick, run.schedule.action_at(tick), jitter, latency, 0)
                latency, tick = None, tick + 1
                if self._robot_done():
                    return
                if run.on_frame is not None:  # every tick's frame needs its observation
                    run.obs = self._observe(run.instruction)
                if tick >= config.max_steps:
                    return
            if run.on_frame is None:
                run.obs = self._observe(run.instruction)

    # -- pieces --------------------------------------------------------------------------------------------
    def _tick(self, run, tick: int, planned: Planned | None, jitter: float, latency, dropped: int) -> None:
        state = self._state(run)
        if planned is None:
            command = self.safety.hold(self.robot, "watchdog", state)
        else:
            command = self.safety.step(self.robot, planned.action, state)
        run.steps += int(command.sent and not command.held)
        if run.on_frame is not None:
            run.on_frame(run.obs, command)
        kind = (
            ("hold" if command.held else "act")
            if command.sent
            else ("dry-hold" if command.held else "dry-act")
        )
        run.ticks.append(
            TickRecord(
                episode=run.index,
                tick=tick,
                time_s=self.clock() - run.t0,
                jitter_ms=1000.0 * jitter,
                kind=kind,
                chunk=-1 if planned is None else planned.chunk,
                index=-1 if planned is None else planned.index,
                latency_ms=None if latency is None else 1000.0 * latency,
                dropped=dropped,
                reasons=command.reasons,
                action=command.action,
            )
        )
        log.debug(
            "tick %d: %s, jitter %.1f ms, latency %s, %d dropped, %s",
            tick,
            kind,
            1000.0 * jitter,
            "-" if latency is None else f"{1000.0 * latency:.1f} ms",
            dropped,
            "+".join(command.reasons) or "no intervention",
        )

    def _observe(self, instruction: str) -> dict:
        return {**self.robot.observe(), "instruction": instruction}

    def _state(self, run: _Episode) -> np.ndarray:
        """The measured state for the safety layer: fresh when the robot can give it without rendering."""
        reader = getattr(self.robot, "state", None)
        return np.asarray(reader() if callable(reader) else run.obs["state"], dtype=np.float64)

    def _robot_done(self) -> bool:
        return bool(getattr(self.robot, "done", False))

    def _wait_until(self, deadline: float) -> float:
        """Sleep until ``deadline`` (e-stop aware); return how late we woke (s, >= 0)."""
        self.estop.check()
        remaining = deadline - self.clock()
        if remaining > 0:
            self.estop.wait(remaining)
            self.estop.check()
        return max(0.0, self.clock() - deadline)

    def _answer(self, request: InferenceRequest) -> InferenceRequest:
        """Wait for ``request`` (the robot is still), e-stop aware and up to ``stall_timeout_s``."""
        waited = self.clock()
        while not request.wait(min(0.01, self.config.period_s)):
            self.estop.check()
            if self.clock() - waited > self.config.stall_timeout_s:
                raise PolicyStalled(f"the policy did not answer within {self.config.stall_timeout_s} s")
        self.estop.check()
        return request

    def _settle(self, run: _Episode) -> None:
        """Let a request still in flight finish (bounded), so the next episode's reset does not race it."""
        if run.request is not None:
            run.request.wait(self.config.stall_timeout_s)
