"""The safety layer: nothing outside the declared limits ever reaches a robot, whatever a policy proposes."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from policies.runtime.robot import RobotLimits
from policies.runtime.safety import SafetyLayer, gripper_command, tightened
from policies.runtime.schedule import ChunkSchedule

TOL = 1e-9
LIMITS = RobotLimits(
    max_translation=0.03,
    max_rotation=0.1,
    max_joint_step=0.05,
    workspace_low=[0.3, -0.2, 0.1],
    workspace_high=[0.6, 0.2, 0.4],
    joint_low=np.full(7, -1.0),
    joint_high=np.full(7, 1.0),
    joint_margin=0.1,
    max_gripper_change=0.5,
)


class KinematicArm:
    """A fake arm that tracks every command perfectly (measured TCP = commanded) and whose joints are a fixed
    linear function of the TCP position, so the safety layer's predictions can be checked exactly. It records
    every command; ``violations()`` checks them all against the declared limits at once."""

    def __init__(self, limits: RobotLimits, seed: int = 0, predictive: bool = True):
        rng = np.random.default_rng(seed)
        self.limits = limits
        self.origin = (limits.workspace_low + limits.workspace_high) / 2
        self.position = self.origin.copy()
        self.jacobian = rng.uniform(-6, 6, (7, 3))  # rad per m: joint limits are met well inside the box
        self.gripper = -1.0
        self.sent: list[
            tuple[np.ndarray, np.ndarray, float]
        ] = []  # (position before, action, gripper before)
        self.stops = 0
        if not predictive:
            self.predict_joints = None

    def joints_at(self, position):
        return (position - self.origin) @ self.jacobian.T  # (..., 7)

    def state(self):
        opening = (1 - self.gripper) / 2 * 0.08
        rot6d = [1, 0, 0, 0, 1, 0]
        return np.concatenate([self.position, rot6d, [opening], self.joints_at(self.position)])

    def predict_joints(self, action):
        return self.joints_at(self.position + np.asarray(action)[:3] * self.limits.translation_step)

    def act(self, action):
        action = np.array(action, dtype=np.float64)
        self.sent.append((self.position.copy(), action, self.gripper))
        if action.shape == (7,):
            self.position = self.position + action[:3] * self.limits.translation_step
            self.gripper = float(action[6])

    def stop(self):
        self.stops += 1

    @property
    def commands(self) -> int:
        return len(self.sent)

    def violations(self) -> dict[str, int]:
        """How many recorded commands broke each limit (all zero for a safe layer)."""
        if not self.sent:
            return {}
        lim = self.limits
        before = np.stack([p for p, _, _ in self.sent])  # (N, 3)
        actions = np.stack([a for _, a, _ in self.sent])  # (N, 7)
        gripper = np.array([g for _, _, g in self.sent])  # (N,)
        after = before + actions[:, :3] * lim.translation_step
        q, q_new = self.joints_at(before), self.joints_at(after)  # (N, 7)
        checks = {
            "finite": np.isfinite(actions).all(axis=1),
            "range": np.abs(actions).max(axis=1) <= 1,
            "translation": np.linalg.norm(actions[:, :3], axis=1) * lim.translation_step
            <= lim.max_translation + TOL,
            "rotation": np.linalg.norm(actions[:, 3:6], axis=1) * lim.rotation_step <= lim.max_rotation + TOL,
            "workspace": np.all(
                (after >= lim.workspace_low - TOL) & (after <= lim.workspace_high + TOL), axis=1
            ),
            "joint step": np.all(np.abs(q_new - q) <= lim.max_joint_step + 1e-7, axis=1),
            "joint margin": np.all(
                (q_new >= np.minimum(lim.joint_low + lim.joint_margin, q) - 1e-7)
                & (q_new <= np.maximum(lim.joint_high - lim.joint_margin, q) + 1e-7),
                axis=1,
            ),
            "gripper rate": np.abs(actions[:, 6] - gripper) <= lim.max_gripper_change + TOL,
        }
        return {name: int((~ok).sum()) for name, ok in checks.items()}


def hostile_actions(count: int, seed: int) -> np.ndarray:
    """(count, 7) float64: random, huge, NaN, inf, exactly +-1, tiny, and long runs of one repeated action."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (count, 7))
    kind = rng.choice(7, count, p=[0.3, 0.15, 0.1, 0.05, 0.1, 0.1, 0.2])
    actions[kind == 1] *= 10.0 ** rng.uniform(1, 9, ((kind == 1).sum(), 1))
    nan_rows = np.flatnonzero(kind == 2)
    actions[nan_rows, rng.integers(0, 7, len(nan_rows))] = np.nan
    inf_rows = np.flatnonzero(kind == 3)
    actions[inf_rows, rng.integers(0, 7, len(inf_rows))] = rng.choice([np.inf, -np.inf], len(inf_rows))
    actions[kind == 4] = np.sign(actions[kind == 4])
    actions[kind == 5] *= 1e-6
    for row in np.flatnonzero(kind == 6):  # duplicated: the previous action again (pushing into a wall)
        actions[row] = actions[row - 1]
    return actions


@pytest.mark.parametrize("predictive", [True, False])
def test_fuzzing_never_sends_a_command_outside_the_limits(predictive):
    """100,000 hostile actions, in four arms on which different limits bind first: stiff joints (joint rules),
    middling, and loose joints (workspace and step caps). Not one command breaks a limit. Without
    predict_joints the joint rules are reactive (docs/runtime.md): every other limit still holds, and no joint
    gets further than one step's travel past its margin."""
    total, counts, sent, holds, started = 0, Counter(), 0, 0, time.perf_counter()
    for joint_gain, seed in ((6.0, 1), (2.5, 2), (0.5, 3), (0.5, 4)):
        arm = KinematicArm(LIMITS, seed, predictive)
        arm.jacobian *= joint_gain / 6
        safety = SafetyLayer(LIMITS)
        safety.reset(arm.state())
        actions = hostile_actions(25_000 if predictive else 5_000, seed)
        furthest = 0.0
        for action in actions:
            safety.step(arm, action, arm.state())
            furthest = max(furthest, float(np.abs(arm.joints_at(arm.position)).max()))
        violations = arm.violations()
        if not predictive:
            one_step = np.abs(arm.jacobian).sum(axis=1).max() * LIMITS.max_translation
            assert furthest <= LIMITS.joint_high[0] - LIMITS.joint_margin + one_step
            violations = {name: n for name, n in violations.items() if not name.startswith("joint")}
        assert set(violations.values()) == {0}, (joint_gain, violations)
        assert arm.commands + arm.stops == len(actions)
        nonfinite = int((~np.isfinite(actions).all(axis=1)).sum())
        assert safety.counts["non_finite"] == nonfinite and arm.stops >= nonfinite
        total += len(actions)
        counts += safety.counts
        sent, holds = sent + arm.commands, holds + arm.stops
    # every check was exercised (and so could have failed), not just the first in line
    checks = ["out_of_range", "translation_cap", "rotation_cap", "workspace", "joint_step", "joint_limit"]
    assert all(counts[reason] > 20 for reason in [*checks, "gripper_rate"]), counts
    assert total == (100_000 if predictive else 20_000)
    print(
        f"{total} hostile actions in {time.perf_counter() - started:.1f} s: {sent} sent, {holds} holds, "
        f"none outside the limits; interventions {dict(sorted(counts.items()))}"
    )


def test_fuzzing_stale_and_duplicated_chunks_through_the_schedule():
    """Chunks stamped in the past, re-sent, or older than the one playing: every tick plays at most the one
    action stamped for it, never one twice, and the robot still gets nothing outside its limits."""
    rng = np.random.default_rng(2)
    arm, safety, schedule = KinematicArm(LIMITS, seed=3), SafetyLayer(LIMITS), ChunkSchedule()
    safety.reset(arm.state())
    tick, played, chunks = 0, set(), {}
    while tick < 20_000:
        chunk = hostile_actions(int(rng.integers(1, 12)), int(rng.integers(1 << 30)))
        start = tick + int(rng.integers(-15, 3))  # mostly stale: computed from an old observation
        for _ in range(1 + (rng.random() < 0.2)):  # sometimes the same chunk arrives twice
            before = schedule.chunk_id
            dropped = schedule.add(chunk, start)
            assert 0 <= dropped <= len(chunk)
            if schedule.chunk_id != before:  # taken (a chunk older than the playing one is dropped whole)
                chunks[schedule.chunk_id] = (start, chunk)
            else:
                assert dropped == len(chunk)
        for _ in range(int(rng.integers(1, 6))):
            planned = schedule.action_at(tick)
            if planned is None:
                safety.hold(arm, "watchdog", arm.state())
            else:
                start_of, chunk_of = chunks[planned.chunk]
                assert start_of + planned.index == tick  # the action stamped for this very tick
                assert (planned.chunk, planned.index) not in played
                assert np.array_equal(planned.action, chunk_of[planned.index], equal_nan=True)
                played.add((planned.chunk, planned.index))
                safety.step(arm, planned.action, arm.state())
            tick += 1
    assert set(arm.violations().values()) == {0} and len(played) > 1000
    with pytest.raises(ValueError, match="already played"):
        schedule.action_at(tick - 1)


def test_without_joint_prediction_a_motion_that_pushed_a_joint_into_its_margin_is_refused():
    """A robot without predict_joints: once a joint went further into its margin, the motion that took it
    there is held, so the joint stops within one step's travel of the margin; moving away is allowed."""
    limits = replace(LIMITS, max_joint_step=0.5)
    arm = KinematicArm(limits, predictive=False)
    safety = SafetyLayer(limits)
    safety.reset(arm.state())
    toward = arm.jacobian[0] / np.linalg.norm(arm.jacobian[0])  # the TCP direction that raises joint 0 most
    push = np.r_[toward, 0, 0, 0, -1]
    held = [safety.step(arm, push, arm.state()).held for _ in range(60)]
    assert held[-10:] == [True] * 10 and safety.counts["joint_limit"] >= 10
    one_step = np.abs(arm.jacobian).sum(axis=1) * limits.max_translation  # (7,) most a joint moves per step
    joints = arm.joints_at(arm.position)
    assert np.all(joints <= limits.joint_high - limits.joint_margin + one_step)
    assert np.all(joints >= limits.joint_low + limits.joint_margin - one_step)
    assert not safety.step(arm, -push, arm.state()).held  # backing out is never refused


def test_caps_scale_and_clip_as_documented():
    arm = KinematicArm(LIMITS)
    arm.jacobian[:] = 0  # joints out of the way
    safety = SafetyLayer(LIMITS, scale=0.5)
    safety.reset(arm.state())
    command = safety.step(arm, [1, 0, 0, 0, 0, 0.2, 3.0], arm.state())
    # clip (gripper 3 -> 1, then rate-limited from open -1 by 0.5), scale 0.5, translation 0.025 m < 0.03 cap
    assert command.action[0] == pytest.approx(0.5) and command.action[5] == pytest.approx(0.1)
    assert command.action[6] == pytest.approx(-0.5)
    assert set(command.reasons) == {"out_of_range", "gripper_rate"}
    command = safety.step(arm, [0, 1, 1, 0, 0, 0, -0.5], arm.state())  # 0.035 m after scale: capped to 0.03
    assert np.linalg.norm(command.action[:3]) * LIMITS.translation_step == pytest.approx(0.03)
    assert command.reasons == ("translation_cap",)


def test_workspace_lets_an_arm_outside_the_box_only_move_back_in():
    arm = KinematicArm(replace(LIMITS, max_joint_step=0.5, joint_margin=0.5))
    arm.jacobian[:] = 0  # joints out of the way
    arm.position = np.array([0.7, 0.0, 0.25])  # 10 cm beyond workspace_high x
    safety = SafetyLayer(arm.limits)
    safety.reset(arm.state())
    outward = safety.step(arm, [0.4, 0.2, 0, 0, 0, 0, -1], arm.state())
    assert (
        outward.action[0] == 0 and outward.action[1] == pytest.approx(0.2) and "workspace" in outward.reasons
    )
    inward = safety.step(arm, [-0.4, 0, 0, 0, 0, 0, -1], arm.state())
    assert inward.action[0] == pytest.approx(-0.4) and inward.reasons == ()


def test_workspace_counts_the_commanded_pose_of_an_arm_that_lags_behind():
    """A blocked arm: its measured TCP stays put while its controller lets the commanded pose lead by up to
    max_lead (as sim.controller does). Pushing at a wall 3 cm away never commands past the wall."""

    class BlockedArm(KinematicArm):
        def act(self, action):
            target = self.commanded + np.asarray(action)[:3] * self.limits.translation_step
            lead = target - self.position
            if np.linalg.norm(lead) > self.limits.max_lead:
                target = self.position + lead * self.limits.max_lead / np.linalg.norm(lead)
            self.commanded = target
            self.highest = max(self.highest, target[0])

    limits = replace(
        LIMITS, max_joint_step=np.inf, joint_low=np.full(7, -np.inf), joint_high=np.full(7, np.inf)
    )
    arm = BlockedArm(limits)
    arm.position[0] = limits.workspace_high[0] - 0.03
    arm.commanded, arm.highest = arm.position.copy(), -np.inf
    safety = SafetyLayer(limits)
    safety.reset(arm.state())
    for _ in range(20):
        safety.step(arm, [1, 0, 0, 0, 0, 0, -1], arm.state())
    assert arm.highest == pytest.approx(limits.workspace_high[0])
    assert safety.counts["workspace"] >= 18


def test_non_finite_actions_hold_the_robot_and_dry_run_sends_nothing(caplog):
    class Untouchable(KinematicArm):
        def act(self, action):
            raise AssertionError("a dry run sent an action")

        def stop(self):
            raise AssertionError("a dry run sent a stop")

    arm = KinematicArm(LIMITS)
    safety = SafetyLayer(LIMITS)
    safety.reset(arm.state())
    with caplog.at_level(logging.INFO, logger="policies.runtime.safety"):
        command = safety.step(arm, [np.nan, 0, 0, 0, 0, 0, 1], arm.state())
    assert command.held and arm.stops == 1 and arm.commands == 0
    assert command.action.tolist() == [0, 0, 0, 0, 0, 0, -1.0]  # the record of a hold: still, gripper kept
    assert "safety: non_finite -> held" in caplog.text
    assert safety.step(arm, "not an action", arm.state()).held
    broken_state = arm.state()
    broken_state[0] = np.nan  # a robot reporting garbage: nothing can be predicted from it
    assert safety.step(arm, np.zeros(7), broken_state).reasons == ("non_finite_state",)
    assert arm.commands == 0 and arm.stops == 3

    dry = Untouchable(LIMITS)
    safety = SafetyLayer(LIMITS, dry_run=True)
    safety.reset(dry.state())
    for action in hostile_actions(200, seed=4):
        command = safety.step(dry, action, dry.state())
        assert not command.sent
    assert safety.hold(dry, "watchdog", dry.state()).held and sum(safety.counts.values()) > 100


def test_disabled_layer_still_clips_and_refuses_non_finite():
    arm = KinematicArm(LIMITS)
    safety = SafetyLayer(LIMITS, enabled=False)
    safety.reset(arm.state())
    command = safety.step(arm, [5, 0, 0, 0, 0, 0, 1], arm.state())
    assert command.action[0] == 1.0 and command.reasons == ("out_of_range",)  # no caps any more
    assert safety.step(arm, [np.inf, 0, 0, 0, 0, 0, 1], arm.state()).held


def test_tightened_refuses_to_loosen_a_robot_limit():
    assert tightened(LIMITS, max_translation=0.01).max_translation == 0.01
    with pytest.raises(ValueError, match="looser than the robot's declared"):
        tightened(LIMITS, max_translation=0.1)
    with pytest.raises(ValueError, match="looser"):
        tightened(LIMITS, workspace_high=[0.7, 0.2, 0.4])
    with pytest.raises(ValueError, match="looser"):
        tightened(LIMITS, joint_margin=0.0)
    with pytest.raises(ValueError, match="scale must be in"):
        SafetyLayer(LIMITS, scale=2.0)
    assert gripper_command(np.r_[np.zeros(9), 0.08, np.zeros(7)]) == -1.0  # fully open
    assert gripper_command(np.r_[np.zeros(9), 0.0, np.zeros(7)]) == 1.0


class BentArm(KinematicArm):
    """Joint 0 follows the TCP's x through a sine, as a real arm's IK bends: the chord between the targets
    of no motion and of the full step (the layer's linear estimate) lies below the curve, so the linearly
    scaled step still moves joint 0 further than max_joint_step."""

    GAIN = 8.0  # rad per m at the origin

    def joints_at(self, position):
        joints = np.zeros(np.shape(position)[:-1] + (7,))
        joints[..., 0] = np.sin(self.GAIN * (np.asarray(position)[..., 0] - self.origin[0]))
        return joints


def test_a_step_the_linear_estimate_cannot_scale_is_scaled_further_not_held_forever():
    """A policy that keeps proposing the same full step along x: the linear fraction's own targets break the
    joint-step rule, so the layer searches a smaller fraction instead of holding (which livelocked: the
    scene never changed, so the policy proposed the same step for ever). The arm makes progress at every
    tick, and no command breaks a limit."""
    limits = replace(LIMITS, max_translation=0.05, max_joint_step=0.2, joint_margin=0.0)
    arm = BentArm(limits)
    safety = SafetyLayer(limits)
    safety.reset(arm.state())
    push = np.array([1.0, 0, 0, 0, 0, 0, -1])
    start = arm.joints_at(arm.position)
    full = arm.predict_joints(push)
    linear = limits.max_joint_step / abs(full[0] - start[0])  # the chord's fraction
    linear_targets = arm.predict_joints(push * np.r_[np.full(6, linear), 1])
    assert abs(linear_targets[0] - start[0]) > limits.max_joint_step  # the case: linear is not enough
    commands = [safety.step(arm, push, arm.state()) for _ in range(3)]
    assert not any(command.held for command in commands), [c.reasons for c in commands]
    assert 0.5 * linear < commands[0].action[0] < linear  # scaled below the chord's fraction, not to nothing
    assert arm.position[0] > arm.origin[0] + 0.02  # progress: two centimetres in three ticks
    assert set(arm.violations().values()) == {0}
