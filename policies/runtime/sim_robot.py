"""Any vla-stack task as a ``Robot``, so a whole deployment rehearses without hardware.

``SimRobot`` wraps the task's gymnasium environment in this process: ``reset(seed)`` starts an episode (the
seed fixes the scene, as in ``vla-eval``), ``act`` steps the simulation by one control period, ``done`` and
``success`` judge the episode. The simulated world only moves on ``act``: a hold (``stop()``) commands the
measured pose and lets no time pass, so a rehearsal is the same whatever the computer's speed.

``RemoteSimRobot`` runs a ``SimRobot`` in a spawned process (never forked: MuJoCo's renderers do not survive
a fork) and speaks to it the way a robot's driver would, in request/reply frames of ``policies.serving.wire``
(msgpack, no pickle) over a pipe: ``{"method": name, "args": [...]}`` answered by ``{"ok": true, "value":
..., "status": {...}}`` or ``{"ok": false, "error": "..."}``.

With ``expert=True`` each observation carries the scripted expert's next action (``policies.expert_policy``),
computed in the simulator's process, so ``policy=expert`` drives the robot as it drives ``vla-eval``.
"""

from __future__ import annotations

import contextlib
import multiprocessing

import numpy as np

import sim
from policies.evaluation.envs import EvalEnv
from policies.parent_watch import exit_with_parent
from policies.runtime.robot import RobotLimits
from policies.serving.wire import pack, unpack
from sim.contract import OBS_INSTRUCTION, validate_action
from sim.controller import MAX_ROTATION, MAX_TRANSLATION, WORKSPACE_HIGH, WORKSPACE_LOW

ROBOT_TYPE = "vla_panda_sim"  # as vla-record writes it: deployment recordings are the same robot's data
METHODS = ("reset", "observe", "state", "act", "predict_joints", "home", "stop", "status", "describe")
REPLY_TIMEOUT_S = 60.0  # the first reset compiles the scene and creates the renderer


def sim_limits(world) -> RobotLimits:
    """What the simulator can do: its own step sizes, workspace and joint ranges, and no tighter caps, so a
    rehearsal with the default safety options plays exactly what ``vla-eval`` plays. Tighten them with the
    safety options to rehearse a real robot's limits."""
    return RobotLimits(
        translation_step=MAX_TRANSLATION,
        rotation_step=MAX_ROTATION,
        max_translation=MAX_TRANSLATION * np.sqrt(3),  # all three axes at full speed
        max_rotation=MAX_ROTATION * np.sqrt(3),
        max_joint_step=np.inf,
        workspace_low=WORKSPACE_LOW,
        workspace_high=WORKSPACE_HIGH,
        joint_low=world.arm_limits[:, 0],
        joint_high=world.arm_limits[:, 1],
        joint_margin=0.0,  # its IK keeps targets inside the ranges; margins are a real arm's precaution
    )


class SimRobot:
    robot_type = ROBOT_TYPE

    def __init__(
        self, task: str, *, image_size=(128, 128), cameras=sim.CAMERAS, expert: bool = False, max_steps=None
    ):
        config = sim.EnvConfig(image_size=tuple(image_size), cameras=tuple(cameras), max_steps=max_steps)
        self.task = task
        self._env = EvalEnv(sim.make(task, config=config), expert_noise=0.0 if expert else None)
        self._base = self._env.unwrapped
        self.limits = sim_limits(self._base.world)
        self.max_steps = self._base.max_steps
        self.fps = self._base.config.control_hz
        self.cameras = tuple(cameras)
        self._obs: dict | None = None
        self._seed: int | None = None
        self.instruction, self.done, self.success, self.steps = "", False, False, 0

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: the scene of ``seed``, the arm at home, the gripper open."""
        obs, info = self._env.reset(seed=seed)
        self._seed = seed
        self._obs = obs
        self.instruction, self.done, self.success, self.steps = str(info["instruction"]), False, False, 0

    def observe(self) -> dict:
        """The observation after the last step (``sim.contract``, without the instruction)."""
        return {key: value for key, value in self._current().items() if key != OBS_INSTRUCTION}

    def state(self) -> np.ndarray:
        return self._current()["state"]

    def act(self, action) -> None:
        if self.done:
            raise RuntimeError("act() on a finished episode (success or step limit): reset(seed) first")
        obs, _, terminated, truncated, info = self._env.step(validate_action(action))
        self._obs = obs
        self.done, self.success, self.steps = (
            bool(terminated or truncated),
            bool(info["success"]),
            int(info["steps"]),
        )

    def predict_joints(self, action) -> np.ndarray:
        """The arm's joint targets (7,) were ``action`` sent now: the controller's own IK, then undone."""
        action = validate_action(action)
        controller, data = self._base.controller, self._base.world.data
        saved = (data.ctrl.copy(), controller.target_pos.copy(), controller.target_mat.copy())
        try:
            controller.apply(action)
            return data.ctrl[self._base.world.arm_actuators].copy()
        finally:
            data.ctrl[:], controller.target_pos, controller.target_mat = saved

    def home(self) -> None:
        """In simulation homing restarts the episode's scene from its seed (objects included)."""
        self.reset(self._seed)

    def stop(self) -> None:
        """Command the measured pose: the arm's servos target where the joints are now."""
        if self._obs is None:
            return
        world = self._base.world
        self._base.controller.reset()
        world.data.ctrl[world.arm_actuators] = world.arm_qpos

    def status(self) -> dict:
        return {
            "instruction": self.instruction,
            "done": self.done,
            "success": self.success,
            "steps": self.steps,
        }

    def describe(self) -> dict:
        """What a remote caller needs to know once: limits, episode length, rate, cameras."""
        limits = {name: getattr(self.limits, name) for name in self.limits.__dataclass_fields__}
        return {"limits": limits, "max_steps": self.max_steps, "fps": self.fps, "cameras": list(self.cameras)}

    def close(self) -> None:
        self._env.close()

    def _current(self) -> dict:
        if self._obs is None:
            raise RuntimeError("the simulated robot has no episode yet: call reset(seed) first")
        return self._obs


def serve(connection, task: str, options: dict) -> None:
    """The simulator process: answer request frames on ``connection`` until "close" or the pipe closes."""
    exit_with_parent()
    try:
        robot = SimRobot(task, **options)
    except Exception as error:  # reported to the parent, which raises it with this message
        connection.send_bytes(pack({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return
    connection.send_bytes(pack({"ok": True, "value": robot.describe(), "status": robot.status()}))
    try:
        while True:
            try:
                request = unpack(connection.recv_bytes())
            except EOFError:
                return
            method = request.get("method") if isinstance(request, dict) else None
            if method == "close":
                connection.send_bytes(pack({"ok": True, "value": None, "status": robot.status()}))
                return
            connection.send_bytes(pack(_answer(robot, method, request)))
    finally:
        robot.close()


def _answer(robot: SimRobot, method, request: dict) -> dict:
    if method not in METHODS:
        return {
            "ok": False,
            "error": f"unknown method {method!r}; the simulated robot answers {list(METHODS)}",
        }
    args = request.get("args") or []
    try:
        value = getattr(robot, method)(*args)
    except Exception as error:  # the caller's mistake or the simulation's: sent back, the process lives on
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "value": value, "status": robot.status()}


class RemoteSimRobot:
    """A ``SimRobot`` in a spawned process; the same methods, each one request/reply frame over a pipe."""

    robot_type = ROBOT_TYPE

    def __init__(self, task: str, **options):
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=serve, args=(child, task, options), name=f"sim-robot-{task}", daemon=True
        )
        self._process.start()
        child.close()
        self._status: dict = {}
        described = self._reply("start")
        self.limits = RobotLimits(**described["limits"])
        self.max_steps, self.fps = described["max_steps"], described["fps"]
        self.cameras = tuple(described["cameras"])

    def _call(self, method: str, *args):
        self._connection.send_bytes(pack({"method": method, "args": list(args)}))
        return self._reply(method)

    def _reply(self, method: str):
        if not self._connection.poll(REPLY_TIMEOUT_S):
            alive = "is alive" if self._process.is_alive() else f"exited with {self._process.exitcode}"
            raise TimeoutError(
                f"the simulator process did not answer {method} within {REPLY_TIMEOUT_S} s ({alive})"
            )
        try:
            reply = unpack(self._connection.recv_bytes())
        except EOFError as error:
            raise RuntimeError(
                f"the simulator process exited ({self._process.exitcode}) during {method}"
            ) from error
        if not reply.get("ok"):
            raise RuntimeError(f"the simulated robot refused {method}: {reply.get('error')}")
        self._status = reply.get("status") or self._status
        return reply.get("value")

    def reset(self, seed: int | None = None) -> None:
        self._call("reset", seed)

    def observe(self) -> dict:
        return self._call("observe")

    def state(self) -> np.ndarray:
        return self._call("state")

    def act(self, action) -> None:
        self._call("act", np.asarray(action, dtype=np.float64))

    def predict_joints(self, action) -> np.ndarray:
        return self._call("predict_joints", np.asarray(action, dtype=np.float64))

    def home(self) -> None:
        self._call("home")

    def stop(self) -> None:
        self._call("stop")

    @property
    def instruction(self) -> str:
        return self._status.get("instruction", "")

    @property
    def done(self) -> bool:
        return bool(self._status.get("done", False))

    @property
    def success(self) -> bool:
        return bool(self._status.get("success", False))

    @property
    def steps(self) -> int:
        return int(self._status.get("steps", 0))

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError, OSError):  # it is going anyway
                self._call("close")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
        self._connection.close()


def make_sim_robot(task: str, remote: bool = False, **options) -> SimRobot | RemoteSimRobot:
    """A simulated robot in this process, or (``remote``) in a spawned one over the wire."""
    return RemoteSimRobot(task, **options) if remote else SimRobot(task, **options)
