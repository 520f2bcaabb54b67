"""``check_robot(robot)``: does a robot adapter keep the ``Robot`` contract (``policies.runtime.robot``)?

An adapter's own tests call it on the adapter (over a fake of its driver, or on the robot with a clear
workspace); it raises ``RobotContractError`` listing every broken rule, and returns what it checked. The rules:

    limits     ``robot.limits`` is a ``RobotLimits`` with 7 finite joint ranges (the safety layer's joint
               checks need them)
    observe    ``{"images": {camera: uint8 (H, W, 3)}, "state": float32 (17,)}``, finite; the state's layout
               is ``sim.contract``'s: a rotation's two orthonormal columns, a gripper opening in [0, 0.1] m,
               joints inside the declared ranges; ``cameras``, when declared, names the images;
               ``state()``, when present, the same shape and type
    act        a zero action is executed without complaint; NaN, out-of-range and wrong-shape actions are
               refused with ``ValueError`` (a robot refuses what it cannot do, loudly)
    stop/home  callable twice in a row; the robot observes afterwards
    safety     through ``SafetyLayer`` with the robot's limits: a full-speed action reaches ``act`` capped
               (at most 1 cm of commanded motion here), a NaN action holds (``stop``) and sends nothing;
               ``predict_joints``, when present, returns 7 finite targets and moves nothing

It moves a real arm by at most 1 cm from its home posture (two actions: zero and the capped one), gripper
command unchanged, and homes it at the end. A simulated robot must be in an episode (``reset``) first.
"""

from __future__ import annotations

import numpy as np

from policies.runtime.robot import RobotLimits
from policies.runtime.safety import SafetyLayer, gripper_command, tightened
from sim.contract import ACTION_DIM, OBS_IMAGES, OBS_STATE, STATE_DIM

CHECK_TRANSLATION = 0.01  # m: the largest commanded motion the check sends
GRIPPER_RANGE = (0.0, 0.1)  # m between the pads; the Panda hand opens to 0.08
TOLERANCE = 1e-3
MOVE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # full speed along x, y, z: the layer must cap it


class RobotContractError(AssertionError):
    """The robot breaks the contract; the message lists every broken rule, one per line."""


class _Recorder:
    """The robot, with the actions that reached ``act`` and the calls to ``stop`` written down."""

    def __init__(self, robot):
        self.robot, self.sent, self.stops = robot, [], 0
        self.predict_joints = getattr(robot, "predict_joints", None)

    def act(self, action) -> None:
        self.sent.append(np.asarray(action, dtype=np.float64).copy())
        self.robot.act(action)

    def stop(self) -> None:
        self.stops += 1
        self.robot.stop()


def check_robot(robot) -> dict:
    """Check ``robot`` against the contract; raise ``RobotContractError`` naming every broken rule."""
    problems: list[str] = []
    limits = _check_limits(robot, problems)
    state = _check_observation(robot, limits, problems)
    if limits is None or state is None:  # nothing further can be judged
        raise RobotContractError("\n".join(problems))
    _check_refusals(robot, problems)
    _try(problems, "act(zeros)", lambda: _returns_none(robot.act(np.zeros(ACTION_DIM)), "act"))
    for name in ("stop", "stop", "home", "home"):
        _try(problems, f"{name}()", getattr(robot, name))
    _check_observation(robot, limits, problems, "after stop() and home()")
    _check_safety(robot, limits, problems)
    _try(problems, "home() at the end", robot.home)
    if problems:
        raise RobotContractError("\n".join(problems))
    cameras = sorted(robot.observe()[OBS_IMAGES])
    return {"cameras": cameras, "predicts_joints": hasattr(robot, "predict_joints")}


def _try(problems: list[str], what: str, call) -> object:
    try:
        return call()
    except Exception as error:  # the adapter's failure is the finding, reported with the others
        problems.append(f"{what} raised {type(error).__name__}: {error}")
        return None


def _returns_none(value, name: str) -> None:
    if value is not None:
        raise TypeError(f"{name}() must return None (it sends and does not wait), returned {value!r}")


def _check_limits(robot, problems: list[str]) -> RobotLimits | None:
    limits = getattr(robot, "limits", None)
    if not isinstance(limits, RobotLimits):
        problems.append(f"limits: robot.limits must be a RobotLimits, got {type(limits).__name__}")
        return None
    ranges = np.stack([limits.joint_low, limits.joint_high]) if limits.joint_low.shape == (7,) else None
    if ranges is None or not np.isfinite(ranges).all():
        problems.append("limits: joint_low and joint_high must declare the 7 arm joints' finite ranges (rad)")
    return limits


def _check_observation(robot, limits, problems: list[str], when: str = "") -> np.ndarray | None:
    where = f"observe() {when}".strip()
    obs = _try(problems, where, robot.observe)
    if not isinstance(obs, dict) or not isinstance(obs.get(OBS_IMAGES), dict) or OBS_STATE not in obs:
        if obs is not None:
            problems.append(f"{where}: must return {{'images': {{camera: image}}, 'state': ...}}")
        return None
    for camera, image in obs[OBS_IMAGES].items():
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3):
            problems.append(f"{where}: images[{camera!r}] must be uint8 (H, W, 3), got {_describe(image)}")
        elif image.shape[2] != 3:
            problems.append(f"{where}: images[{camera!r}] must have 3 channels (RGB), got {image.shape}")
    declared = getattr(robot, "cameras", None)
    if declared is not None and sorted(declared) != sorted(obs[OBS_IMAGES]):
        problems.append(
            f"{where}: images {sorted(obs[OBS_IMAGES])} differ from robot.cameras {list(declared)}"
        )
    state = obs[OBS_STATE]
    if not _is_state(state):
        problems.append(f"{where}: state must be float32 ({STATE_DIM},) and finite, got {_describe(state)}")
        return None
    problems += [f"{where}: {problem}" for problem in _layout_problems(state, limits)]
    if hasattr(robot, "state") and not _is_state(_try(problems, "state()", robot.state)):
        problems.append(f"state() must return what observe()['state'] is: float32 ({STATE_DIM},), finite")
    return state


def _is_state(state) -> bool:
    return (
        isinstance(state, np.ndarray)
        and state.dtype == np.float32
        and state.shape == (STATE_DIM,)
        and bool(np.isfinite(state).all())
    )


def _layout_problems(state: np.ndarray, limits: RobotLimits | None) -> list[str]:
    """sim.contract's state layout: TCP position, two rotation columns, gripper opening, 7 joints."""
    found = []
    first, second = state[3:6].astype(np.float64), state[6:9].astype(np.float64)
    norms, dot = (np.linalg.norm(first), np.linalg.norm(second)), float(first @ second)
    if max(abs(n - 1) for n in norms) > TOLERANCE or abs(dot) > TOLERANCE:
        found.append(f"state[3:9] must be two orthonormal rotation columns, got {np.round(state[3:9], 3)}")
    if not GRIPPER_RANGE[0] - TOLERANCE <= state[9] <= GRIPPER_RANGE[1]:
        found.append(f"state[9] is the gripper opening in m, in {list(GRIPPER_RANGE)}; got {state[9]:.4f}")
    if limits is not None and limits.joint_low.shape == (7,):
        joints = state[10:].astype(np.float64)
        outside = (joints < limits.joint_low - TOLERANCE) | (joints > limits.joint_high + TOLERANCE)
        if outside.any():
            found.append(
                f"state[10:] (joints) outside the declared ranges at {np.flatnonzero(outside).tolist()}"
            )
    return found


def _check_refusals(robot, problems: list[str]) -> None:
    bad = {
        "NaN": np.full(ACTION_DIM, np.nan),
        "out-of-range (1.5)": np.full(ACTION_DIM, 1.5),
        f"wrong-shape ({ACTION_DIM - 1},)": np.zeros(ACTION_DIM - 1),
    }
    for name, action in bad.items():
        try:
            robot.act(action)
        except ValueError:
            continue
        except Exception as error:
            problems.append(
                f"act({name} action) must raise ValueError, raised {type(error).__name__}: {error}"
            )
            continue
        problems.append(f"act({name} action) was accepted: a robot must refuse it with ValueError")


def _check_safety(robot, limits: RobotLimits, problems: list[str]) -> None:
    state = _try(problems, "observe() before the safety check", lambda: robot.observe()[OBS_STATE])
    if state is None:
        return
    cap = min(limits.max_translation, CHECK_TRANSLATION)
    layer = SafetyLayer(tightened(limits, max_translation=cap))
    layer.reset(state)
    recorder = _Recorder(robot)
    action = MOVE.copy()
    action[6] = gripper_command(state)  # the gripper stays as it is
    if recorder.predict_joints is not None:
        _check_prediction(robot, action, problems)
    sent = _try(problems, "act() through the safety layer", lambda: layer.step(recorder, action, state))
    if sent is not None and recorder.sent:
        moved = np.linalg.norm(recorder.sent[-1][:3]) * limits.translation_step
        if moved > cap * (1 + 1e-6):
            problems.append(f"safety: a full-speed action reached act() uncapped ({moved:.4f} m > {cap} m)")
    elif sent is not None and not sent.held:
        problems.append("safety: the layer passed an action that never reached act()")
    before, stops = len(recorder.sent), recorder.stops
    held = _try(
        problems, "a NaN action through the safety layer", lambda: layer.step(recorder, [np.nan] * 7, state)
    )
    if held is not None and (not held.held or len(recorder.sent) != before or recorder.stops != stops + 1):
        problems.append("safety: a NaN action must hold the robot (stop() once) and send nothing")


def _check_prediction(robot, action: np.ndarray, problems: list[str]) -> None:
    before = robot.observe()[OBS_STATE]
    targets = _try(problems, "predict_joints()", lambda: robot.predict_joints(action))
    if targets is None:
        return
    targets = np.asarray(targets)
    if targets.shape != (7,) or not np.isfinite(targets).all():
        problems.append(f"predict_joints() must return 7 finite joint targets, got {_describe(targets)}")
    after = robot.observe()[OBS_STATE]
    if np.abs(after[10:] - before[10:]).max() > TOLERANCE:
        problems.append("predict_joints() moved the arm: it must only compute the targets")


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__
