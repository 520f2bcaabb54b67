"""The gymnasium environment: the loop that ties a task, the physics, the controller and the cameras.

Physics lives in ``sim.world``, the task in ``sim.tasks``, control in ``sim.controller``; this module only
orders them: validate the action, command the controller, step physics, check stability, render, judge.
"""

from __future__ import annotations

import string
import zlib
from dataclasses import dataclass, field, replace
from typing import ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from sim import contract, gl, robot, scene
from sim.contract import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from sim.controller import CartesianController
from sim.grasp import GraspTimer
from sim.tasks import get_task
from sim.world import World, state_vector

_INSTRUCTION_CHARSET = frozenset(string.ascii_letters + string.digits + " ,.'-")


@dataclass(frozen=True)
class EnvConfig:
    """Environment options; every field can be passed to ``sim.make(task, **options)``."""

    image_size: tuple[int, int] = (128, 128)  # (H, W)
    cameras: tuple[str, ...] = contract.CAMERAS  # () renders nothing: fast, state-only rollouts
    control_hz: float = 10.0
    physics_dt: float = 0.002  # s
    render: scene.RenderConfig = field(default_factory=scene.RenderConfig)
    lighting_jitter: float = 0.0  # relative change of the key light's brightness and direction
    camera_jitter: float = 0.0  # m, uniform offset of the agentview camera
    joint_noise: float = 0.02  # rad, uniform noise on the initial arm configuration
    max_steps: int | None = None  # None: the task's own limit
    render_size: tuple[int, int] = (256, 256)  # (H, W) of env.render(), for videos
    # Instruction templates of the task never drawn by reset (a recording's held-out paraphrases); a
    # reset's options={"template": ...} can still ask for one.
    exclude_templates: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if isinstance(self.exclude_templates, str):
            raise ValueError(f"exclude_templates must be a list of templates, got {self.exclude_templates!r}")
        object.__setattr__(self, "exclude_templates", tuple(str(t) for t in self.exclude_templates))
        object.__setattr__(self, "render_size", tuple(int(v) for v in self.render_size))
        if isinstance(self.render, dict):
            object.__setattr__(self, "render", scene.RenderConfig(**self.render))
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be (H, W) with both >= 16, got {self.image_size}")
        unknown = [c for c in self.cameras if c not in contract.CAMERAS]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; available: {list(contract.CAMERAS)}")
        if not 0 < self.physics_dt <= 0.01:
            raise ValueError(f"physics_dt must be in (0, 0.01] s, got {self.physics_dt}")
        if not 0 < self.control_hz <= 1 / self.physics_dt:
            raise ValueError(f"control_hz must be in (0, {1 / self.physics_dt}], got {self.control_hz}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        for name in ("lighting_jitter", "camera_jitter", "joint_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def substeps(self) -> int:
        return max(1, round(1.0 / (self.control_hz * self.physics_dt)))


class TabletopEnv(gym.Env):
    """A language-conditioned tabletop manipulation task with a 7-DoF arm (see ``sim.contract``)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str, config: EnvConfig | None = None, render_mode: str | None = None, **options):
        self.config = replace(config or EnvConfig(), **options)
        self.task = get_task(task)()
        self.task.check_templates(self.config.exclude_templates)
        if set(self.task.instructions) <= set(self.config.exclude_templates):
            raise ValueError(f"exclude_templates leaves {task} no instruction template to draw")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        xml = scene.scene_xml(
            self.task.objects_xml(),
            self.config.render,
            self.config.image_size,
            self.config.physics_dt,
            contact_xml=self.task.contact_xml(),
        )
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.world = World(self.model)
        self.controller = CartesianController(self.world)
        self.max_steps = self.config.max_steps or self.task.max_steps
        self._nominal = {
            "light_diffuse": self.model.light_diffuse.copy(),
            "light_dir": self.model.light_dir.copy(),
            "cam_pos": self.model.cam_pos.copy(),
        }
        self._renderer = self._video_renderer = None
        if self.config.cameras:
            self._renderer = _make_renderer(self.model, *self.config.image_size)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (contract.ACTION_DIM,), np.float32)
        h, w = self.config.image_size
        images = {c: gym.spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.config.cameras}
        self.observation_space = gym.spaces.Dict(
            {
                OBS_IMAGES: gym.spaces.Dict(images),
                OBS_STATE: gym.spaces.Box(-np.inf, np.inf, (contract.STATE_DIM,), np.float32),
                OBS_INSTRUCTION: gym.spaces.Text(256, charset=_INSTRUCTION_CHARSET),
            }
        )
        self.instruction = ""
        self._steps = 0
        self._episode_over = True
        self._grasp = GraspTimer()

    # -- gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode. ``options`` (both optional, deterministic):

        - ``{"goal": {...}}``: the instruction names this goal (one of ``task.goals()``, e.g.
          ``{"color": "blue"}`` on PressButton) and ``success`` and the expert's plan follow it. The scene is
          exactly the one ``reset(seed=seed)`` places (the rng is consumed identically, then re-targeted).
        - ``{"template": "..."}``: the instruction uses this template of ``task.instructions``.

        A goal not in the scene, a goal on a task without alternatives (the drawers) or an unknown
        template: ``ValueError`` naming the task and the valid choices.
        """
        goal, template = self._reset_options(options)
        self._episode_over = True  # until the reset succeeds: a refused goal leaves no episode to step
        super().reset(seed=seed)
        if seed is not None:
            # Each task draws from its own stream: with a shared one, OpenDrawer and CloseDrawer at one seed
            # would lay out the same scene, and a multi-task evaluation would not be independent samples.
            self.np_random = np.random.default_rng([seed, zlib.crc32(self.task.name.encode())])
        rng = self.np_random
        model, world = self.model, self.world
        mujoco.mj_resetData(model, world.data)
        self._jitter(rng)
        noise = rng.uniform(-1, 1, 7) * self.config.joint_noise
        world.set_arm_qpos(np.clip(robot.HOME_QPOS + noise, world.arm_limits[:, 0], world.arm_limits[:, 1]))
        world.set_gripper_opening(2 * robot.FINGER_TRAVEL)
        self.instruction = self.task.reset(world, rng, goal, template, self.config.exclude_templates)
        mujoco.mj_forward(model, world.data)
        mujoco.mj_step(model, world.data, nstep=20)  # let objects settle onto the table
        self.controller.reset()
        self._grasp.reset()
        self._steps = 0
        self._episode_over = False
        return self._observation(), self._info(success=False, unstable=False)

    def step(self, action):
        if self._episode_over:
            raise RuntimeError(
                "step() called on a finished episode (terminated or truncated, or never reset): call reset() first"
            )
        action = contract.validate_action(action)
        data = self.world.data
        saved = (data.time, data.qpos.copy(), data.qvel.copy(), data.act.copy(), data.ctrl.copy())
        bad_before = _divergence_warnings(data)
        picks = self.task.pick_body()
        if picks is not None:  # the observation the action was chosen on, and the gripper it commands
            self._grasp.update(self._steps, self.world.tcp_pos, self.world.body_pos(picks), float(action[6]))
        self.controller.apply(action)
        mujoco.mj_step(self.model, data, nstep=self.config.substeps)
        unstable = self._unstable(bad_before)
        if unstable:  # restore the last good state so no observation ever holds NaN
            data.time, data.qpos[:], data.qvel[:], data.act[:], data.ctrl[:] = saved
            mujoco.mj_forward(self.model, data)
        self._steps += 1
        success = (not unstable) and self.task.success(self.world)
        terminated = success
        truncated = unstable or self._steps >= self.max_steps
        self._episode_over = terminated or truncated
        return self._observation(), float(success), terminated, truncated, self._info(success, unstable)

    def render(self):
        """The agentview camera at ``config.render_size``, for videos."""
        if self._video_renderer is None:
            self._video_renderer = _make_renderer(self.model, *self.config.render_size)
        self._video_renderer.update_scene(self.world.data, camera="agentview")
        return self._video_renderer.render()

    def close(self):
        for renderer in (self._renderer, self._video_renderer):
            if renderer is not None:
                renderer.close()
        self._renderer = self._video_renderer = None

    # -- pieces ------------------------------------------------------------------------------------------
    def _reset_options(self, options: dict | None) -> tuple[dict | None, str | None]:
        """The reset's goal and template, checked as far as they can be before the scene exists."""
        options = dict(options or {})
        unknown = sorted(set(options) - {"goal", "template"})
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; valid options: ['goal', 'template']")
        goal, template = options.get("goal"), options.get("template")
        if goal is not None and not self.task.goal_fields:
            self.task.set_goal(goal)  # raises: the task has no alternative goals
        if goal is not None and not isinstance(goal, dict):
            raise ValueError(f"goal must be a dict of {list(self.task.goal_fields)}, got {goal!r}")
        if template is not None:
            self.task.check_templates([template])
        return goal, template

    def _unstable(self, bad_before: int) -> bool:
        data = self.world.data
        if _divergence_warnings(data) > bad_before:
            return True  # MuJoCo has already reset the state it found diverging
        if not (np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()):
            return True
        return bool(np.abs(data.qvel).max() > 1e3)

    def _observation(self) -> dict:
        world = self.world
        state = state_vector(world.tcp_pos, world.tcp_mat, world.gripper_opening, world.arm_qpos)
        images = {}
        for camera in self.config.cameras:
            self._renderer.update_scene(world.data, camera=camera)
            images[camera] = self._renderer.render()
        return {OBS_IMAGES: images, OBS_STATE: state, OBS_INSTRUCTION: self.instruction}

    def _info(self, success: bool, unstable: bool) -> dict:
        return {
            "success": bool(success),
            "task": self.task.name,
            "instruction": self.instruction,
            "steps": self._steps,
            "physics_unstable": bool(unstable),
            **(self._grasp.info() if self.task.pick_body() is not None else {}),
        }

    def _jitter(self, rng: np.random.Generator) -> None:
        model, nominal = self.model, self._nominal
        j = self.config.lighting_jitter
        model.light_diffuse[:] = nominal["light_diffuse"] * (1 + rng.uniform(-j, j))
        direction = nominal["light_dir"] + rng.uniform(-j, j, nominal["light_dir"].shape)
        model.light_dir[:] = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
        agentview = self.world.camera_id("agentview")
        model.cam_pos[:] = nominal["cam_pos"]
        model.cam_pos[agentview] += rng.uniform(-1, 1, 3) * self.config.camera_jitter


_DIVERGENCE = (
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQACC,
)


def _divergence_warnings(data: mujoco.MjData) -> int:
    return sum(int(data.warning[w].number) for w in _DIVERGENCE)


def _make_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    gl.choose_backend()
    try:
        return mujoco.Renderer(model, height, width)
    except Exception as error:  # the GL backends raise several unrelated types
        raise RuntimeError(gl.missing_backend_message(error)) from error
