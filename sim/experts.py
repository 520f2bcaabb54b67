"""Scripted experts: follow a task's waypoint plan, computed from privileged simulator state.

An expert has the policy interface of the whole stack (``reset()``, ``infer(obs) -> {"actions": (1, 7)}``)
so recording and evaluation treat it like any learned policy.
"""

from __future__ import annotations

import numpy as np

from sim.contract import ACTION_DIM, LABEL_ACTIONS
from sim.controller import MAX_ROTATION, MAX_TRANSLATION, orientation_error
from sim.tasks.base import Track, Waypoint


def down_mat(yaw: float) -> np.ndarray:
    """TCP orientation pointing straight down, fingers closing along (sin yaw, -cos yaw, 0)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


class ScriptedExpert:
    """Drives one environment through its task's plan. ``noise`` adds Gaussian noise to the executed arm
    actions; the output then also holds the intended actions under ``LABEL_ACTIONS``. Because the expert
    re-plans from the state it reaches, demonstrations recorded this way show how to recover from the
    deviations (DART, Laskey et al. 2017).

    ``plan``: where the waypoints come from, ``plan(world) -> steps``, asked once at the first ``infer``
    after a reset; by default the task's plan. A skill's reference executor passes the skill's."""

    def __init__(self, env, noise: float = 0.0, seed: int | None = None, plan=None):
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env.unwrapped
        self.noise = noise
        self._rng = np.random.default_rng(seed)
        self._make_plan = plan if plan is not None else self.env.task.plan
        self.reset()

    def reset(self) -> None:
        self._plan = None
        self._index = 0
        self._current: Waypoint | None = None
        self._steps_on_waypoint = 0
        self._held = 0

    def infer(self, obs: dict) -> dict[str, np.ndarray]:
        world, controller = self.env.world, self.env.controller
        if self._plan is None:
            self._plan = list(self._make_plan(world))
        # Decide on this observation whether the current waypoint is done before acting, so that the frame
        # which reaches the grasp is the one labelled "close". Deciding after acting labelled it "open" and
        # put "close" on the next frame, whose state DART noise had moved on (the learned policy then
        # hovered over the object with open fingers).
        self._advance(world, self._waypoint(world))
        waypoint = self._waypoint(world)
        error = waypoint.pos - controller.target_pos
        action = np.zeros(ACTION_DIM)
        action[:3] = np.clip(error / MAX_TRANSLATION, -waypoint.speed, waypoint.speed)
        action[3:6] = orientation_error(down_mat(waypoint.yaw), controller.target_mat) / MAX_ROTATION
        action[6] = waypoint.gripper
        intended = np.clip(action, -1.0, 1.0).astype(np.float32)[None]  # (1, 7)
        if self.noise == 0:
            return {"actions": intended}
        executed = action.copy()
        executed[:6] += self._rng.normal(0.0, self.noise, 6)
        return {"actions": np.clip(executed, -1.0, 1.0).astype(np.float32)[None], LABEL_ACTIONS: intended}

    def plan_complete(self) -> bool:
        """Whether the last waypoint of the plan has been reached (and held): nothing is left to do."""
        if self._plan is None or self._index < len(self._plan) - 1:
            return False
        world = self.env.world
        waypoint = self._waypoint(world)
        if isinstance(self._plan[-1], Track):
            return False  # a tracked step is never done by position alone
        return bool(np.linalg.norm(world.tcp_pos - waypoint.pos) < waypoint.tolerance)

    def _waypoint(self, world) -> Waypoint:
        step = self._plan[min(self._index, len(self._plan) - 1)]
        if isinstance(step, Track):
            return step.waypoint(world)
        if self._current is None:
            self._current = step(world) if callable(step) else step
        return self._current

    def _advance(self, world, waypoint: Waypoint) -> None:
        if self._index >= len(self._plan) - 1:
            return  # the last waypoint is held until the episode ends
        self._steps_on_waypoint += 1
        reached = np.linalg.norm(world.tcp_pos - waypoint.pos) < waypoint.tolerance
        if reached:
            self._held += 1
        if (reached and self._held > waypoint.hold) or self._steps_on_waypoint >= waypoint.timeout:
            self._index += 1
            self._current = None
            self._steps_on_waypoint = 0
            self._held = 0
