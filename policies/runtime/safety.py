"""The safety layer: every action a policy proposes passes here, and only here, on its way to a robot.

``SafetyLayer.step(robot, action, state)`` checks one action against the robot's declared ``RobotLimits``
and sends what survives; ``hold(robot, reason, state)`` tells the robot to hold still (``robot.stop()``).
The checks, in order (each one that changes the action is an intervention, counted under its reason):

    non_finite       not 7 finite numbers (NaN, inf, wrong shape)  -> hold (robot.stop()), nothing sent
    out_of_range     entries outside [-1, 1]                       -> clipped
    (scale)          arm entries multiplied by ``scale``, for slow first runs (configured, not counted)
    non_finite_state the measured state holds NaN or inf          -> hold
    translation_cap  commanded TCP step > max_translation (m)     -> translation scaled down
    rotation_cap     commanded TCP rotation > max_rotation (rad)   -> rotation scaled down
    workspace        commanded TCP would leave the workspace box   -> translation clipped per axis
    joint_step       a joint target more than max_joint_step from the measured joint   -> arm scaled / hold
    joint_limit      a joint target inside joint_margin of its limit and further in than the measured joint
                                                                   -> arm scaled / hold
    gripper_rate     gripper command changes more than max_gripper_change            -> clipped

How the checks predict a step. The layer keeps its own model of the robot's commanded TCP position, as the
controller does (``sim.controller``): anchored at the measured TCP when an episode starts and after every hold
(``stop()`` commands the measured pose), moved by each sent translation, and kept within ``max_lead`` of the
measured TCP. A translation is allowed only as far as that commanded position stays in the box (an axis
already outside may only move back in). Joints: a robot with ``predict_joints(action)`` (its IK, without
moving) gets exact checks: the arm part of the action is scaled down to the largest fraction whose joint
targets respect both joint rules (the linear estimate between the targets of no motion and of the full
action, bisected further down when the IK's curve makes it fail), or held when even no motion does. A robot
without it cannot tell before sending, so its measured joints (the state's last 7 entries) are watched
instead: a joint that moved more than ``max_joint_step`` in the last step holds the robot, and an arm motion
after which a joint inside its margin went further in is blocked (any action with a component along it is
held) until every joint has left its margin; motions away pass. A joint can so creep at most one step into
its margin per direction tried.
``enabled=False`` keeps only the first two checks and the scale; nothing non-finite or outside [-1, 1] is
ever sent. ``dry_run=True`` computes and logs everything and sends nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from policies.runtime.robot import RobotLimits
from sim.contract import ACTION_DIM

log = logging.getLogger(__name__)

GRIPPER_OPEN_WIDTH = 0.08  # m between the pads at gripper command -1 (sim.contract)
TOLERANCE = 1e-9  # relative slack before a cap counts as exceeded (float rounding is not an intervention)
SHRINK_STEPS = 10  # bisection steps below a failed linear fraction: at most 10 more IK calls per step
LOGGED_PER_REASON = 5  # interventions of one reason logged at INFO per episode; the rest at DEBUG
ARM = slice(0, 6)
TRANSLATION, ROTATION, GRIPPER = slice(0, 3), slice(3, 6), 6
JOINTS = slice(-7, None)  # measured joint positions in the state (sim.contract)


@dataclass(frozen=True)
class Command:
    """What the layer did with one control step."""

    action: np.ndarray  # float64 (7,): the action sent (a hold: zero motion, the gripper kept)
    held: bool  # True: the robot was told to hold still (robot.stop()) instead
    reasons: tuple[str, ...] = ()  # the interventions of this step
    sent: bool = True  # False in a dry run


def tightened(limits: RobotLimits, **overrides) -> RobotLimits:
    """``limits`` with the non-None ``overrides`` applied; an override may only make a limit stricter."""
    changes = {name: value for name, value in overrides.items() if value is not None}
    looser = {
        "max_translation": lambda new, old: new > old,
        "max_rotation": lambda new, old: new > old,
        "max_joint_step": lambda new, old: new > old,
        "max_gripper_change": lambda new, old: new > old,
        "joint_margin": lambda new, old: new < old,
        "workspace_low": lambda new, old: np.any(np.asarray(new) < old),
        "workspace_high": lambda new, old: np.any(np.asarray(new) > old),
    }
    for name, value in changes.items():
        if name not in looser:
            raise ValueError(f"unknown safety limit {name!r}; choose from {sorted(looser)}")
        old = getattr(limits, name)
        if looser[name](value, old):
            raise ValueError(
                f"safety {name}={value} is looser than the robot's declared {old}: the safety options can only "
                "tighten a robot's limits"
            )
    return replace(limits, **changes)


class SafetyLayer:
    def __init__(
        self, limits: RobotLimits, *, scale: float = 1.0, dry_run: bool = False, enabled: bool = True
    ):
        if not 0 < scale <= 1:
            raise ValueError(
                f"scale must be in (0, 1] (it slows the arm down, never speeds it up), got {scale}"
            )
        self.limits = limits
        self.scale = float(scale)
        self.dry_run = dry_run
        self.enabled = enabled
        self.counts: Counter[str] = Counter()  # reason -> interventions, over the layer's life
        self._episode_counts: Counter[str] = Counter()
        self._commanded: np.ndarray | None = None  # (3,) modelled commanded TCP position; None: re-anchor
        self._gripper: float | None = None  # the last gripper command sent
        self._joints: np.ndarray | None = None  # (7,) the joints measured at the previous step
        self._last_arm: np.ndarray | None = None  # (6,) the arm part of the last action sent
        self._blocked: list[np.ndarray] = []  # (6,) arm motions that pushed a joint into its margin
        self._check_joints = bool(
            np.isfinite(limits.max_joint_step)
            or np.isfinite(limits.joint_low).any()
            or np.isfinite(limits.joint_high).any()
        )

    # -- the interface -----------------------------------------------------------------------------------
    def reset(self, state) -> None:
        """At an episode's start: anchor the model at the measured ``state`` (float (17,))."""
        state = np.asarray(state, dtype=np.float64)
        self._commanded = None
        self._gripper = gripper_command(state)
        self._joints, self._last_arm, self._blocked = None, None, []
        self._episode_counts = Counter()

    def step(self, robot, action, state) -> Command:
        """Check ``action`` against the limits at the measured ``state`` and send what passes."""
        state = np.asarray(state, dtype=np.float64)
        predict = getattr(robot, "predict_joints", None)
        if self.enabled and self._check_joints and predict is None:
            self._watch_joints(state[JOINTS])
        safe, reasons = self.filter(action, state, predict)
        if safe is None:
            return self._hold(robot, tuple(reasons), state)
        self._note(reasons, safe)
        if not self.dry_run:
            robot.act(safe)
            self._advance(safe, state)
        self._joints = state[JOINTS].copy()
        return Command(safe, False, tuple(reasons), not self.dry_run)

    def hold(self, robot, reason: str, state) -> Command:
        """Hold the robot still (``robot.stop()``) for ``reason`` (e.g. "watchdog"), counted like the checks."""
        return self._hold(robot, (reason,), np.asarray(state, dtype=np.float64))

    def filter(self, action, state: np.ndarray, predict=None) -> tuple[np.ndarray | None, list[str]]:
        """The action the checks allow (float64 (7,)) or None for a hold, and the reasons it was changed.
        Sends nothing and changes no state; ``predict``: the robot's ``predict_joints`` or None."""
        action = _as_action(action)
        if action is None:
            return None, ["non_finite"]
        reasons = []
        safe = np.clip(action, -1.0, 1.0)
        if np.any(safe != action):
            reasons.append("out_of_range")
        safe[ARM] *= self.scale
        if not self.enabled:
            return safe, reasons
        if not np.isfinite(state).all():  # a robot reporting garbage: nothing can be predicted from it
            return None, [*reasons, "non_finite_state"]
        limits = self.limits
        self._cap(
            safe, TRANSLATION, limits.translation_step, limits.max_translation, "translation_cap", reasons
        )
        self._cap(safe, ROTATION, limits.rotation_step, limits.max_rotation, "rotation_cap", reasons)
        self._keep_in_workspace(safe, state, reasons)
        if self._check_joints:
            safe = self._joint_checks(safe, state, predict, reasons)
            if safe is None:
                return None, reasons
        self._limit_gripper(safe, reasons)
        return safe, reasons

    # -- the checks ----------------------------------------------------------------------------------------
    @staticmethod
    def _cap(
        action: np.ndarray, part: slice, step: float, cap: float, reason: str, reasons: list[str]
    ) -> None:
        size = float(np.linalg.norm(action[part])) * step  # m or rad commanded by this step
        if size > cap * (1 + TOLERANCE):
            action[part] *= cap / size
            reasons.append(reason)

    def _commanded_position(self, state: np.ndarray) -> np.ndarray:
        return state[:3].copy() if self._commanded is None else self._commanded

    def _keep_in_workspace(self, action: np.ndarray, state: np.ndarray, reasons: list[str]) -> None:
        limits = self.limits
        position = self._commanded_position(state)
        delta = action[TRANSLATION] * limits.translation_step  # (3,) m
        # An axis already outside the box (the arm started there) may stay put or move back in, never out.
        low = np.minimum(0.0, limits.workspace_low - position)
        high = np.maximum(0.0, limits.workspace_high - position)
        allowed = np.clip(delta, low, high)
        if np.any(allowed != delta):
            action[TRANSLATION] = allowed / limits.translation_step
            reasons.append("workspace")

    def _joint_window(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(7,) lowest and highest joint targets allowed from the measured ``joints``: within one step of
        them, and outside the margin band unless the joint is already there (then: no further in)."""
        limits = self.limits
        low = np.minimum(limits.joint_low + limits.joint_margin, joints)
        high = np.maximum(limits.joint_high - limits.joint_margin, joints)
        return (
            np.maximum(joints - limits.max_joint_step, low),
            np.minimum(joints + limits.max_joint_step, high),
        )

    def _violation(self, targets: np.ndarray, joints: np.ndarray, low, high) -> str | None:
        slack = TOLERANCE * (1 + np.abs(joints))
        if np.all((targets >= low - slack) & (targets <= high + slack)):
            return None
        too_far = np.abs(targets - joints) > self.limits.max_joint_step + slack
        return "joint_step" if too_far.any() else "joint_limit"

    def _joint_checks(self, action: np.ndarray, state: np.ndarray, predict, reasons: list[str]):
        joints = state[JOINTS]
        if predict is None:
            return self._reactive_joint_check(action, joints, reasons)
        low, high = self._joint_window(joints)
        end = _targets(predict, action)
        reason = self._violation(end, joints, low, high)
        if reason is None:
            return action
        reasons.append(reason)
        still = action.copy()
        still[ARM] = 0.0
        start = _targets(predict, still)
        if self._violation(start, joints, low, high) is not None:
            return None  # even no motion breaks a joint rule (the commanded pose leads too far): hold
        fraction = _largest_fraction(start, end, low, high)
        fraction = self._passing_fraction(action, fraction, predict, joints, low, high)
        if fraction <= 0:
            return None
        scaled = action.copy()
        scaled[ARM] *= fraction
        return scaled

    def _passing_fraction(self, action: np.ndarray, linear: float, predict, joints, low, high) -> float:
        """The largest fraction of the arm motion whose own joint targets pass, at most ``linear`` (the
        chord's estimate, exact for a linear IK) and within ``linear * 2**-SHRINK_STEPS`` of the largest;
        0 when none was found. A real IK bends, so the estimate itself may fail; holding then would livelock
        (the scene stays, the policy proposes the same step, the arm never moves), so the fraction is
        bisected between 0 (no motion, which passes) and the estimate. Only fractions whose targets were
        checked are ever returned."""

        def passes(fraction: float) -> bool:
            scaled = action.copy()
            scaled[ARM] *= fraction
            return self._violation(_targets(predict, scaled), joints, low, high) is None

        if linear <= 0 or passes(linear):
            return linear
        good, bad = 0.0, linear
        for _ in range(SHRINK_STEPS):
            middle = (good + bad) / 2
            good, bad = (middle, bad) if passes(middle) else (good, middle)
        return good

    def _reactive_joint_check(self, action: np.ndarray, joints: np.ndarray, reasons: list[str]):
        if self._joints is not None and np.any(np.abs(joints - self._joints) > self.limits.max_joint_step):
            reasons.append("joint_step")
            return None
        if any(float(action[ARM] @ direction) > 0 for direction in self._blocked):
            reasons.append("joint_limit")
            return None
        return action

    def _watch_joints(self, joints: np.ndarray) -> None:
        """Without a joint prediction: learn which arm motions push a joint deeper into its margin. A sent
        arm action after which a joint inside its margin went further in is blocked (any action with a
        component along it is held) until every joint is out of its margin again."""
        limits = self.limits
        below = joints < limits.joint_low + limits.joint_margin
        above = joints > limits.joint_high - limits.joint_margin
        if not (below | above).any():
            self._blocked = []
            return
        if self._joints is None or self._last_arm is None or not self._last_arm.any():
            return
        moved = joints - self._joints
        if np.any((below & (moved < 0)) | (above & (moved > 0))):
            self._blocked.append(self._last_arm.copy())

    def _limit_gripper(self, action: np.ndarray, reasons: list[str]) -> None:
        change = self.limits.max_gripper_change
        if self._gripper is None or change >= 2.0:
            return
        allowed = float(np.clip(action[GRIPPER], self._gripper - change, self._gripper + change))
        if allowed != action[GRIPPER]:
            action[GRIPPER] = allowed
            reasons.append("gripper_rate")

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _advance(self, action: np.ndarray, state: np.ndarray) -> None:
        """Move the model of the commanded pose by a sent action, as the robot's controller moves its own."""
        position = self._commanded_position(state) + action[TRANSLATION] * self.limits.translation_step
        lead = position - state[:3]
        distance = float(np.linalg.norm(lead))
        if distance > self.limits.max_lead:
            position = state[:3] + lead * (self.limits.max_lead / distance)
        self._commanded = position
        self._gripper = float(action[GRIPPER])
        self._last_arm = action[ARM].copy()

    def _hold(self, robot, reasons: tuple[str, ...], state: np.ndarray) -> Command:
        still = np.zeros(ACTION_DIM)
        still[GRIPPER] = self._gripper if self._gripper is not None else gripper_command(state)
        self._note(reasons, None)
        if not self.dry_run:
            robot.stop()
            self._commanded = None  # stop() commands the measured pose: re-anchor there
            self._last_arm = None
        if len(state) >= 7:
            self._joints = state[JOINTS].copy()
        return Command(still, True, reasons, not self.dry_run)

    def _note(self, reasons, action: np.ndarray | None) -> None:
        for reason in reasons:
            self.counts[reason] += 1
            self._episode_counts[reason] += 1
            level = logging.INFO if self._episode_counts[reason] <= LOGGED_PER_REASON else logging.DEBUG
            if log.isEnabledFor(level):
                what = "held" if action is None else f"sent {np.round(action, 3).tolist()}"
                more = (
                    " (more are logged at DEBUG)" if self._episode_counts[reason] == LOGGED_PER_REASON else ""
                )
                log.log(level, "safety: %s -> %s%s", reason, what, more)


def gripper_command(state: np.ndarray) -> float:
    """The gripper command (-1 open .. +1 closed) that holds the measured opening (state entry 9)."""
    if len(state) < 10 or not np.isfinite(state[9]):
        return -1.0
    return float(np.clip(1.0 - 2.0 * state[9] / GRIPPER_OPEN_WIDTH, -1.0, 1.0))


def _as_action(action) -> np.ndarray | None:
    """``action`` as a float64 (7,) copy, or None when it is not 7 finite numbers."""
    try:
        array = np.array(action, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.shape != (ACTION_DIM,) or not np.isfinite(array).all():
        return None
    return array


def _targets(predict, action: np.ndarray) -> np.ndarray:
    targets = np.asarray(predict(action), dtype=np.float64)
    if targets.shape != (7,):
        raise ValueError(f"robot.predict_joints must return 7 joint targets, got shape {targets.shape}")
    return targets


def _largest_fraction(start: np.ndarray, end: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """The largest s in [0, 1] keeping start + s * (end - start) inside [low, high] on every joint, for a
    ``start`` inside (the joint targets of no motion, then of the full action, interpolated linearly)."""
    direction = end - start
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(direction > 0, (high - start) / direction, np.inf)
        room = np.where(direction < 0, (low - start) / direction, room)
    return float(np.clip(np.min(room), 0.0, 1.0))
