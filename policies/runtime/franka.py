"""A Franka Emika Panda or Franka Research 3 arm with the Franka Hand, through franky (libfranka for Python).

``FrankaRobot`` speaks the stack's action space exactly as the simulator does: it keeps its own commanded
TCP pose and moves it with ``sim.controller.next_commanded_pose`` (the function the simulator's controller
calls), from the TCP pose the robot measures. Each ``act()`` sends the new commanded pose to franky as an
absolute Cartesian target; franky re-plans the running motion towards it (preemption), so a control loop at
10 Hz gets smooth motion without waiting for the arm. The gripper runs on its own thread, because franky's
gripper calls block for about half a second.

The TCP. In vla-stack the TCP is the point between the fingertips, with the Franka Hand's orientation: in
the flange frame it sits 0.1034 m along z, turned -45 degrees about z (``hand_tcp_in_flange()``; this is
also the simulator's TCP, ``sim.robot``). franky reports and commands Franka's end-effector frame (EE), which
the robot's Desk configures (with the Franka Hand selected, EE is that same point). The adapter reads the
flange-to-EE transform (``F_T_EE``) from the robot and converts, so the TCP is right whatever Desk's
setting; pass ``tcp_in_flange`` for other fingers. All poses are in the robot's base frame, which is the
simulator's world frame when the robot stands as in the simulator (base on the table top's back edge).

franky is an optional dependency (``pip install 'vla-stack[franka]'``), imported when a robot is opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import numpy as np

from policies.runtime.camera import Camera, check_frame
from policies.runtime.robot import RobotLimits
from sim import robot as sim_robot
from sim.contract import OBS_IMAGES, OBS_STATE, validate_action
from sim.controller import MAX_ROTATION, MAX_TRANSLATION, WORKSPACE_HIGH, WORKSPACE_LOW, next_commanded_pose
from sim.world import state_vector

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vla-stack[franka]'"
# Joint position limits (rad). Panda: the simulator's (Franka's DH table); FR3: Franka's FR3 datasheet.
JOINT_LIMITS = {
    "panda": (
        np.array([row.lower for row in sim_robot.PANDA_DH]),
        np.array([row.upper for row in sim_robot.PANDA_DH]),
    ),
    "fr3": (
        np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159]),
        np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159]),
    ),
}
GRIPPER_MODES = ("binary", "width")
_WIDTH_TOLERANCE = 0.005  # m: width commands closer than this to the running one are not re-sent
_STOP_TIMEOUT = 2.0  # s to wait for the stopped motion to end


def hand_tcp_in_flange(offset: float = sim_robot.HAND_TCP, yaw: float = -np.pi / 4) -> np.ndarray:
    """The TCP's pose (4x4) in the flange frame: ``offset`` m along the flange's z, turned ``yaw`` about it."""
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[2, 3] = offset
    return pose


def franka_limits(
    model: str = "panda", workspace_low=WORKSPACE_LOW, workspace_high=WORKSPACE_HIGH
) -> RobotLimits:
    """The arm's ``RobotLimits``: ``model``'s joint limits, the simulator's step sizes (so actions mean what
    they meant in training; slow first runs use the safety layer's ``scale``) and a workspace box in the
    base frame (default: the simulator's; shrink it to your cell)."""
    if model not in JOINT_LIMITS:
        raise ValueError(f"model must be one of {sorted(JOINT_LIMITS)}, got {model!r}")
    low, high = JOINT_LIMITS[model]
    return RobotLimits(
        translation_step=MAX_TRANSLATION,
        rotation_step=MAX_ROTATION,
        max_translation=MAX_TRANSLATION,
        max_rotation=MAX_ROTATION,
        workspace_low=workspace_low,
        workspace_high=workspace_high,
        joint_low=low,
        joint_high=high,
    )


def _import_franky():
    try:
        import franky
    except ImportError as err:
        raise ImportError(
            f"FrankaRobot needs franky, libfranka's Python bindings, which are not installed: {INSTALL_HINT} "
            "(x86-64 Linux; the wheel must match the robot's firmware, see docs/franka.md)"
        ) from err
    return franky


def _rigid_inverse(pose: np.ndarray) -> np.ndarray:
    inverse = np.eye(4)
    inverse[:3, :3] = pose[:3, :3].T
    inverse[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    return inverse


def _check_rigid(pose, name: str) -> np.ndarray:
    array = np.asarray(pose, dtype=np.float64)
    if array.shape != (4, 4) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a finite 4x4 homogeneous transform, got shape {array.shape}")
    rotation = array[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0:
        raise ValueError(f"{name}'s upper-left 3x3 block must be a rotation matrix")
    if not np.allclose(array[3], [0, 0, 0, 1]):
        raise ValueError(f"{name}'s last row must be [0, 0, 0, 1], got {array[3].tolist()}")
    return array


class _GripperWorker:
    """Runs blocking franky gripper commands on a thread. Only the newest command waits: one that arrives
    while another runs replaces any waiting one, so the gripper never works through a backlog."""

    def __init__(self, gripper, speed: float, force: float):
        self._gripper = gripper
        self._speed, self._force = speed, force
        self._condition = threading.Condition()
        self._pending: tuple[str, float] | None = None
        self._current: tuple[str, float] | None = None  # running, or last run
        self._busy = False
        self._closed = False
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="franka-gripper", daemon=True)
        self._thread.start()

    def submit(self, command: tuple[str, float]) -> None:
        """Queue ``("grasp", 0.0)`` or ``("move", width)``; returns at once."""
        self.raise_error()
        with self._condition:
            if _same(command, self._current):
                self._pending = None  # what runs, or has run, is already what is asked for
            elif not _same(command, self._pending):
                self._pending = command
            self._condition.notify_all()

    def cancel(self) -> None:
        """Drop the waiting command. A running one finishes (a grasp keeps holding: stopping must not drop
        the object)."""
        with self._condition:
            self._pending = None

    def wait_idle(self, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def raise_error(self) -> None:
        with self._condition:
            error, self._error = self._error, None
        if error is not None:
            raise RuntimeError(f"the Franka gripper's last command failed: {error}") from error

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                command, self._pending = self._pending, None
                self._current, self._busy = command, True
            try:
                self._execute(command)
            except Exception as err:  # reported to the control loop at its next act()
                with self._condition:
                    self._error = err
                    self._current = None  # unknown state: let the same command be sent again
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def _execute(self, command: tuple[str, float]) -> None:
        kind, width = command
        if kind == "grasp":
            # Close until the fingers meet resistance and hold it with ``force``; epsilons this wide count
            # any final width as success, an object or none.
            self._gripper.grasp(0.0, self._speed, self._force, epsilon_inner=1.0, epsilon_outer=1.0)
        else:
            self._gripper.move(width, self._speed)


def _same(a: tuple[str, float] | None, b: tuple[str, float] | None) -> bool:
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and abs(a[1] - b[1]) < _WIDTH_TOLERANCE


class FrankaRobot:
    """The ``Robot`` protocol (``policies.runtime.robot``) on a Panda or FR3 with a Franka Hand.

    ``host``: the robot's FCI address. ``cameras``: ``{name: Camera}``, named as the policy's cameras.
    ``model``: ``"panda"`` or ``"fr3"`` (joint limits). ``limits``: declared ``RobotLimits`` (default
    ``franka_limits(model)``). ``dynamics_factor``:
    franky's relative dynamics factor, the fraction of the arm's velocity, acceleration and jerk limits its
    motions may use; the default 0.1 is deliberately gentle (0.17 m/s on an FR3, whose limit is 1.7 m/s),
    slower than the simulator's arm at full action (0.5 m/s); raise it once the set-up is trusted. ``tcp_in_flange``: the TCP's pose in the flange frame (see
    the module docstring). ``gripper_mode``: ``"binary"`` (default) closes with a force-controlled grasp
    for a gripper action > 0 and opens fully for < 0 (0 keeps the last command), which holds objects the way
    the simulator's force-limited fingers do; ``"width"`` maps the action linearly to an opening as the
    simulator does (-1: fully open, +1: 0 m) with franky's ``move``, which does not squeeze an object and
    fails when blocked by one. ``dry_run``: read the robot and compute every target, but never move the arm
    or the gripper, ``home()`` included (``last_target`` holds what would have been sent); the safety
    layer's own ``dry_run`` keeps actions from reaching ``act()`` at all.
    """

    def __init__(
        self,
        host: str,
        cameras: Mapping[str, Camera] | None = None,
        *,
        model: str = "panda",
        limits: RobotLimits | None = None,
        dynamics_factor: float = 0.1,
        tcp_in_flange=None,
        gripper_mode: str = "binary",
        gripper_speed: float = 0.1,
        grasp_force: float = 20.0,
        home_qpos=sim_robot.HOME_QPOS,
        dry_run: bool = False,
    ):
        self.limits = limits if limits is not None else franka_limits(model)
        if not 0 < dynamics_factor <= 1:
            raise ValueError(f"dynamics_factor must be in (0, 1], got {dynamics_factor}")
        if gripper_mode not in GRIPPER_MODES:
            raise ValueError(f"gripper_mode must be one of {GRIPPER_MODES}, got {gripper_mode!r}")
        if gripper_speed <= 0 or grasp_force <= 0:
            raise ValueError("gripper_speed and grasp_force must be > 0")
        self.home_qpos = self._checked_home(home_qpos)
        self.tcp_in_flange = _check_rigid(
            hand_tcp_in_flange() if tcp_in_flange is None else tcp_in_flange, "tcp_in_flange"
        )
        self.cameras = dict(cameras or {})
        self.gripper_mode = gripper_mode
        self.dry_run = dry_run

        self._franky = _import_franky()
        self._robot = self._franky.Robot(host)
        self._robot.relative_dynamics_factor = dynamics_factor
        self._hand = self._franky.Gripper(host)
        # Fully open as in the simulator (0.08 m), or less if homing measured the fingers narrower.
        reported = float(self._hand.max_width)
        fully_open = 2 * sim_robot.FINGER_TRAVEL
        self.open_width = min(fully_open, reported) if reported > 0 else fully_open
        self._gripper = _GripperWorker(self._hand, gripper_speed, grasp_force)

        flange_to_ee = _check_rigid(self._robot.state.F_T_EE.matrix, "the robot's F_T_EE")
        self._ee_to_tcp = _rigid_inverse(flange_to_ee) @ self.tcp_in_flange
        self._tcp_to_ee = _rigid_inverse(self._ee_to_tcp)
        self._lock = threading.Lock()  # stop() may come from a watchdog thread while act() runs
        self._moving = False  # an asynchronous motion was sent and not stopped
        tcp, _ = self._measured()
        self._target: tuple[np.ndarray, np.ndarray] | None = (tcp[:3, 3], tcp[:3, :3])
        self.last_target: np.ndarray | None = None  # 4x4 TCP pose of the last act(), sent or (dry run) not

    # -- the Robot protocol ---------------------------------------------------------------------------
    def observe(self) -> dict:
        state = self.state()
        images = {name: check_frame(name, camera.read()) for name, camera in self.cameras.items()}
        return {OBS_IMAGES: images, OBS_STATE: state}

    def state(self) -> np.ndarray:
        """``observe()``'s float32 (17,) state without reading the cameras (the safety layer reads it every
        control step)."""
        tcp, joints = self._measured()
        return state_vector(tcp[:3, 3], tcp[:3, :3], float(self._hand.width), joints)

    def act(self, action) -> None:
        action = validate_action(action)
        with self._lock:
            self._gripper.raise_error()
            tcp, _ = self._measured()
            if self._target is None:  # after stop() or a failed motion: start again from where the arm is
                self._target = (tcp[:3, 3], tcp[:3, :3])
            limits = self.limits
            pos, mat = next_commanded_pose(
                *self._target,
                tcp[:3, 3],
                tcp[:3, :3],
                action,
                translation_step=limits.translation_step,
                rotation_step=limits.rotation_step,
                max_lead=limits.max_lead,
                workspace=(limits.workspace_low, limits.workspace_high),
            )
            self._target = (pos, mat)
            self.last_target = np.eye(4)
            self.last_target[:3, :3], self.last_target[:3, 3] = mat, pos
            if self.dry_run:
                return
            self._send(self.last_target)
            command = self._gripper_command(float(action[6]))
            if command is not None:
                self._gripper.submit(command)

    def home(self, timeout: float = 10.0) -> None:
        """Open the gripper, move the joints to ``home_qpos`` (blocking), then command the pose reached."""
        with self._lock:
            self._halt()  # franky cannot switch from the held Cartesian motion to a joint motion
            if not self.dry_run:
                self._robot.recover_from_errors()
                self._gripper.submit(("move", self.open_width))
                motion = self._franky.JointMotion(self.home_qpos, self._franky.ReferenceType.Absolute)
                self._robot.move(motion, asynchronous=False)
                if not self._gripper.wait_idle(timeout):
                    raise RuntimeError(f"the Franka gripper did not finish opening within {timeout} s")
                self._gripper.raise_error()
            tcp, _ = self._measured()
            self._target = (tcp[:3, 3], tcp[:3, :3])

    def stop(self) -> None:
        """End the arm's motion now and drop any waiting gripper command; a grasp keeps holding. The next
        act() starts from the pose the arm is in. Calling it again does nothing more."""
        with self._lock:
            self._gripper.cancel()
            self._target = None
            self._halt()

    # -- extras ---------------------------------------------------------------------------------------
    def wait_for_gripper(self, timeout: float = 2.0) -> bool:
        """Wait until the gripper has carried out every command sent; False if ``timeout`` s passed first."""
        return self._gripper.wait_idle(timeout)

    def close(self) -> None:
        """Stop, and end the gripper thread."""
        self.stop()
        self._gripper.close()

    # -- internals ------------------------------------------------------------------------------------
    def _measured(self) -> tuple[np.ndarray, np.ndarray]:
        """The measured TCP pose (4x4, base frame) and joint positions (7,), from one state sample."""
        state = self._robot.state
        ee = np.asarray(state.O_T_EE.matrix, dtype=np.float64)
        return ee @ self._ee_to_tcp, np.asarray(state.q, dtype=np.float64).reshape(7)

    def _send(self, tcp_target: np.ndarray) -> None:
        franky = self._franky
        target = franky.Affine(tcp_target @ self._tcp_to_ee)
        # return_when_finished=False: the motion holds its target until the next one replaces it, so every
        # act() updates a running motion instead of starting a new one.
        motion = franky.CartesianMotion(target, franky.ReferenceType.Absolute, return_when_finished=False)
        try:
            self._robot.move(motion, asynchronous=True)
        except Exception:
            # The arm is not where this target assumed (a reflex stopped it, say): start again from the pose
            # it is in at the next act(), once the error is dealt with.
            self._target = None
            self._moving = False
            raise
        self._moving = True

    def _gripper_command(self, value: float) -> tuple[str, float] | None:
        """The gripper command for an action's gripper value (-1 open .. +1 closed), or None to keep the last."""
        if self.gripper_mode == "width":
            return ("move", (1.0 - value) / 2 * self.open_width)
        if value == 0:
            return None
        return ("grasp", 0.0) if value > 0 else ("move", self.open_width)

    def _halt(self) -> None:
        if not self._moving:
            return
        self._robot.stop()
        self._moving = False
        try:
            ended = self._robot.join_motion(_STOP_TIMEOUT)
        except self._franky.ControlException as err:
            # franky ends a stopped motion with this exception; taking it here keeps the next move from
            # raising it. It may also be an earlier reflex, so it is logged.
            log.warning("the Franka's motion ended with: %s", err)
            return
        if not ended:
            log.warning("the Franka's motion had not ended %s s after stop()", _STOP_TIMEOUT)

    def _checked_home(self, home_qpos) -> np.ndarray:
        q = np.asarray(home_qpos, dtype=np.float64).reshape(-1)
        low = self.limits.joint_low + self.limits.joint_margin
        high = self.limits.joint_high - self.limits.joint_margin
        if q.shape != (7,) or not np.isfinite(q).all():
            raise ValueError(f"home_qpos must be 7 finite joint angles (rad), got {home_qpos!r}")
        if low.shape == (7,) and (np.any(q < low) or np.any(q > high)):
            raise ValueError(f"home_qpos {q.tolist()} is not inside the joint limits less joint_margin")
        return q
