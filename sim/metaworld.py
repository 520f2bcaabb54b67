"""Meta-World v3 behind vla-stack's observation contract, with Meta-World's scripted policies as experts.

    from sim import metaworld as mw
    mw.resolve("metaworld/mt10")                 # an id (task or group) -> the task names
    env = mw.make("metaworld/reach-v3", image_size=(480, 480))
    expert = mw.metaworld_expert(env)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(expert.infer(obs)["actions"][0])

Observation: ``{"images": {"corner2": uint8[H, W, 3]}, "state": float32[4], "instruction": str}``; state is
the end-effector position (m, world frame) and Meta-World's normalised gripper opening. Action: float[4] in
[-1, 1], ``[dx, dy, dz, gripper]`` (Meta-World's own action; gripper +1 closes, as everywhere in vla-stack).

Meta-World is imported lazily: ``import sim`` never needs it, nor do this module's ids and constants (it pins
mujoco==3.3.0, so it lives in ``.venv-metaworld``, built by ``make metaworld``). ``describe()`` gives the
protocol as a dict, for results.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from sim import contract

ID_PREFIX = "metaworld/"
CAMERA = "corner2"
# Where LeRobot's Meta-World integration (after Seo et al. 2022, arXiv:2206.14244) puts corner2: a view of the
# whole table from the front corner. The stock corner2 sits elsewhere; results are only comparable with this.
CAMERA_POS = (0.75, 0.075, 0.7)
MAX_STEPS = 500  # Meta-World's max_path_length; its env refuses to step past it
MT1_SEED = 42  # the seed of metaworld.MT1, which fixes its 50 train tasks (object and goal positions)
# Control steps per second: Meta-World's frame_skip 5 x its 2.5 ms physics step. A recording's fps must be
# known before any env is built (in a process that may lack Meta-World), so it is a constant; every env
# checks it against its own dt.
CONTROL_HZ = 80
STATE_NAMES = ("ee_x", "ee_y", "ee_z", "gripper_opening")
ACTION_NAMES = ("dx", "dy", "dz", "gripper")
ACTION_DIM = len(ACTION_NAMES)
_INSTRUCTION_CHARSET = "abcdefghijklmnopqrstuvwxyz ,'-"  # gymnasium's Text space has no space by default

# One instruction per task, in our own words (imperative, lower case, like sim's tasks).
INSTRUCTIONS = {
    "assembly-v3": "put the ring of the nut over the peg",
    "basketball-v3": "pick up the ball and drop it through the hoop",
    "bin-picking-v3": "move the puck from the left bin into the right bin",
    "box-close-v3": "pick up the lid and put it on the box",
    "button-press-topdown-v3": "press the button down from above",
    "button-press-topdown-wall-v3": "reach over the wall and press the button down from above",
    "button-press-v3": "push the button in from the front",
    "button-press-wall-v3": "reach past the wall and push the button in",
    "coffee-button-v3": "press the button of the coffee machine",
    "coffee-pull-v3": "pull the mug out from under the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial half a turn",
    "disassemble-v3": "lift the nut off the peg",
    "door-close-v3": "swing the door shut",
    "door-lock-v3": "turn the door's lock clockwise to lock it",
    "door-open-v3": "pull the door open on its hinge",
    "door-unlock-v3": "turn the door's lock counter-clockwise to unlock it",
    "drawer-close-v3": "push the drawer closed",
    "drawer-open-v3": "pull the drawer open",
    "faucet-close-v3": "turn the faucet handle clockwise",
    "faucet-open-v3": "turn the faucet handle counter-clockwise",
    "hammer-v3": "hammer the nail into the wall",
    "hand-insert-v3": "put the gripper into the hole in the table",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up a quarter turn",
    "peg-insert-side-v3": "insert the peg sideways into the hole",
    "peg-unplug-side-v3": "pull the peg out of the hole sideways",
    "pick-out-of-hole-v3": "lift the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "pick-place-wall-v3": "pick up the puck, carry it over the wall and place it at the goal",
    "plate-slide-back-side-v3": "slide the plate sideways out of the cabinet",
    "plate-slide-back-v3": "slide the plate back out of the cabinet",
    "plate-slide-side-v3": "slide the plate sideways into the cabinet",
    "plate-slide-v3": "slide the plate into the cabinet",
    "push-back-v3": "push the puck backwards to the goal",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "reach-v3": "move the gripper to the goal",
    "reach-wall-v3": "move the gripper over the wall to the goal",
    "shelf-place-v3": "pick up the puck and put it on the shelf",
    "soccer-v3": "push the ball into the goal",
    "stick-pull-v3": "grab the stick and pull the container with it",
    "stick-push-v3": "grab the stick and push the container with it",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the edge of the table",
    "window-close-v3": "slide the window closed",
    "window-open-v3": "slide the window open",
}
TASKS = tuple(sorted(INSTRUCTIONS))

# Meta-World's MT10 (metaworld.MT10's train classes) and the difficulty buckets of Seo et al. 2022 (Masked
# World Models, appendix), which LeRobot's Meta-World evaluation also reports by.
GROUPS: dict[str, tuple[str, ...]] = {
    "mt10": (
        "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
    ),
    "mt50": TASKS,
    "easy": (
        "button-press-v3", "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-wall-v3",
        "coffee-button-v3", "dial-turn-v3", "door-close-v3", "door-lock-v3", "door-open-v3", "door-unlock-v3",
        "drawer-close-v3", "drawer-open-v3", "faucet-close-v3", "faucet-open-v3", "handle-press-v3",
        "handle-press-side-v3", "handle-pull-v3", "handle-pull-side-v3", "lever-pull-v3", "plate-slide-v3",
        "plate-slide-back-v3", "plate-slide-back-side-v3", "plate-slide-side-v3", "reach-v3", "reach-wall-v3",
        "window-close-v3", "window-open-v3", "peg-unplug-side-v3",
    ),
    "medium": (
        "basketball-v3", "bin-picking-v3", "box-close-v3", "coffee-pull-v3", "coffee-push-v3", "hammer-v3",
        "peg-insert-side-v3", "push-wall-v3", "soccer-v3", "sweep-v3", "sweep-into-v3",
    ),
    "hard": ("assembly-v3", "hand-insert-v3", "pick-out-of-hole-v3", "pick-place-v3", "push-v3", "push-back-v3"),
    "very_hard": ("shelf-place-v3", "disassemble-v3", "stick-pull-v3", "stick-push-v3", "pick-place-wall-v3"),
}  # fmt: skip
BUCKETS = ("easy", "medium", "hard", "very_hard")


def list_ids() -> list[str]:
    """Every valid id: the groups first, then one per task."""
    return [ID_PREFIX + name for name in (*GROUPS, *TASKS)]


def resolve(name: str) -> list[str]:
    """A task or group id (``metaworld/reach-v3``, ``metaworld/mt10``; the prefix is optional) -> task names."""
    key = name.removeprefix(ID_PREFIX) if isinstance(name, str) else None
    if key in GROUPS:
        return list(GROUPS[key])
    if key in INSTRUCTIONS:
        return [key]
    raise ValueError(f"unknown Meta-World task or group {name!r}; valid names: {', '.join(list_ids())}")


def check_installed() -> None:
    """Raise ``ImportError`` saying how to get Meta-World, unless it can be imported here."""
    _import_metaworld()


def _import_metaworld():
    try:
        import metaworld
        import metaworld.policies
    except ImportError as error:
        raise ImportError(
            f"Meta-World is not installed in this Python environment ({error}). It pins mujoco==3.3.0, so it has "
            "a venv of its own: build it with `make metaworld` and run with .venv-metaworld/bin/python."
        ) from None
    return metaworld


def validate_action(action) -> np.ndarray:
    """Return ``action`` as float32 (4,), or raise ``ValueError`` naming what is wrong with it (the checks of
    ``sim.contract``, over Meta-World's four dimensions)."""
    return np.clip(contract.validate_action(action, ACTION_NAMES), -1.0, 1.0).astype(np.float32)


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 task; each reset draws one of MT1's 50 train tasks (object/goal positions) from the
    episode seed, so an episode is a function of its seed. Success ends the episode (``terminated``)."""

    # render_fps: the control rate, as sim's envs give it (videos and recordings are written at it).
    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(
        self,
        task: str,
        image_size: tuple[int, int] = (480, 480),
        render_images: bool = True,
        max_steps: int = MAX_STEPS,
    ):
        tasks = resolve(task)
        if len(tasks) != 1 or task.removeprefix(ID_PREFIX) in GROUPS:
            raise ValueError(f"an env runs one task and {task!r} is a group; resolve() lists its tasks")
        self.task = tasks[0]
        metaworld = _import_metaworld()
        self.height, self.width = (int(side) for side in image_size)
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size}")
        # render_images=False skips rendering, and the observation then has no "images" entry: the experts'
        # ceiling needs only the physics, which rendering never touches.
        self.render_images = render_images
        # Shorter episodes only (a quick check): Meta-World itself refuses to step past MAX_STEPS.
        if not 1 <= int(max_steps) <= MAX_STEPS:
            raise ValueError(f"max_steps must be in [1, {MAX_STEPS}] (Meta-World's limit), got {max_steps}")
        self.max_steps = int(max_steps)
        benchmark = metaworld.MT1(self.task, seed=MT1_SEED)
        self._train_tasks = benchmark.train_tasks
        self._env = benchmark.train_classes[self.task](
            render_mode="rgb_array" if render_images else None,
            camera_name=CAMERA,
            width=self.width,
            height=self.height,
        )
        self._env.set_task(self._train_tasks[0])  # Meta-World refuses to step before a task is set
        if not np.isclose(1.0 / self._env.dt, CONTROL_HZ):
            raise RuntimeError(
                f"{self.task} steps at {1.0 / self._env.dt:g} Hz, not CONTROL_HZ = {CONTROL_HZ}"
            )
        model = self._env.model
        # Read when the first render creates the GL context: shadows and multisampling off, as in our sim, for
        # speed on CPU renderers. (LeRobot keeps Meta-World's defaults: the pixels differ, not the physics.)
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        model.cam_pos[model.camera(CAMERA).id] = CAMERA_POS
        self.instruction = INSTRUCTIONS[self.task]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        spaces = {
            "state": gym.spaces.Box(-np.inf, np.inf, (len(STATE_NAMES),), np.float32),
            "instruction": gym.spaces.Text(256, charset=_INSTRUCTION_CHARSET),
        }
        if render_images:
            image = gym.spaces.Box(0, 255, (self.height, self.width, 3), np.uint8)
            spaces["images"] = gym.spaces.Dict({CAMERA: image})
        self.observation_space = gym.spaces.Dict(spaces)
        self.privileged_obs: np.ndarray | None = None  # Meta-World's 39-D observation, for the experts only
        self.train_task_index = -1
        self._steps = 0

    def describe(self) -> dict[str, Any]:
        """The protocol as data: what a result needs to say to be comparable."""
        return {
            **protocol((self.height, self.width), self.max_steps),
            "task": self.task,
            "instruction": self.instruction,
        }

    def render(self) -> np.ndarray:
        """The ``corner2`` view of the current state at the image size (a video frame: Meta-World has one
        camera, so the videos show what the policy sees)."""
        if not self.render_images:
            raise RuntimeError("this env was made with render_images=False, so it cannot render")
        return self._render()

    def _render(self) -> np.ndarray:
        # corner2 renders upside down and mirrored; flipping both axes turns it upright.
        return np.ascontiguousarray(np.flip(self._env.render(), (0, 1)))

    def _observation(self, raw: np.ndarray) -> dict[str, Any]:
        self.privileged_obs = raw
        obs: dict[str, Any] = {"state": raw[:4].astype(np.float32), "instruction": self.instruction}
        if self.render_images:
            obs["images"] = {CAMERA: self._render()}
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.train_task_index = int(self.np_random.integers(len(self._train_tasks)))
        self._env.set_task(self._train_tasks[self.train_task_index])
        raw, _ = self._env.reset()
        self._steps = 0
        return self._observation(raw), self._info(success=False)

    def step(self, action):
        if self.privileged_obs is None:
            raise RuntimeError("call reset() before step()")
        if self._steps >= self.max_steps:
            raise RuntimeError(f"the episode ended after {self.max_steps} steps; call reset() before step()")
        raw, reward, _, _, info = self._env.step(validate_action(action))
        self._steps += 1
        success = bool(info.get("success", 0.0))
        truncated = self._steps >= self.max_steps and not success
        return self._observation(raw), float(reward), success, truncated, self._info(success, info)

    def _info(self, success: bool, raw: dict | None = None) -> dict[str, Any]:
        # "task" and "instruction" as sim's envs give them, so policies.rollout runs either; the task is named
        # by its id, which make() takes and which tells it from sim's tasks.
        return {
            **(raw or {}),
            "task": ID_PREFIX + self.task,
            "instruction": self.instruction,
            "train_task": self.train_task_index,
            "success": success,
            "steps": self._steps,
        }

    def close(self) -> None:
        self._env.close()


def make(
    task: str,
    image_size: tuple[int, int] = (480, 480),
    render_images: bool = True,
    max_steps: int = MAX_STEPS,
) -> MetaWorldEnv:
    """One task's environment by id (``metaworld/reach-v3``); see ``MetaWorldEnv``."""
    return MetaWorldEnv(task, image_size=image_size, render_images=render_images, max_steps=max_steps)


def protocol(image_size: tuple[int, int], max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """What every task's episodes share (``describe()`` adds the task): a result's protocol, without an env."""
    from importlib.metadata import version

    import mujoco

    return {
        "benchmark": "Meta-World v3",
        "metaworld_version": version("metaworld"),
        "mujoco_version": mujoco.__version__,
        "mt1_seed": MT1_SEED,
        "task_sampling": f"metaworld.MT1(task, seed={MT1_SEED}).train_tasks[i], i = np_random(episode seed).integers(50)",
        "camera": CAMERA,
        "camera_pos": list(CAMERA_POS),
        "image_flip": "rows and columns (a 180-degree rotation: the raw corner2 render is upside down)",
        "image_size": [int(side) for side in image_size],
        "shadows": False,
        "multisampling": False,
        "control_hz": CONTROL_HZ,
        "state": list(STATE_NAMES),
        "action": list(ACTION_NAMES),
        "max_steps": max_steps,
        "success": "terminated at the first step with info['success'] (truncated at max_steps)",
    }


class MetaWorldExpert:
    """Meta-World's scripted policy for the env's task, behind our policy interface. It reads the privileged
    observation (object and goal positions) that the env keeps beside the contract's observation.

    ``noise`` > 0 adds Gaussian noise to the executed hand motion (dx, dy, dz; not the gripper, as in
    ``sim.ScriptedExpert``) and returns the intended actions under ``LABEL_ACTIONS``: the policy re-plans from
    the state it reaches, so recorded demonstrations show recoveries (DART)."""

    def __init__(self, env: MetaWorldEnv, noise: float = 0.0, seed: int | None = None):
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        metaworld = _import_metaworld()
        self.env = env.unwrapped
        self.policy = metaworld.policies.ENV_POLICY_MAP[self.env.task]()
        self.noise = noise
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass  # the scripted policies are memoryless: each action is a function of the current observation

    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.env.privileged_obs is None:
            raise RuntimeError("reset the env before asking its expert for an action")
        with warnings.catch_warnings():
            # Meta-World's policies warn on every call that their gains may exceed [-1, 1]: we clip here.
            warnings.filterwarnings("ignore", message="Constant", category=UserWarning)
            action = self.policy.get_action(self.env.privileged_obs)
        intended = np.clip(action, -1.0, 1.0).astype(np.float32)[None]
        if self.noise == 0:
            return {"actions": intended}
        executed = intended[0].astype(np.float64)
        executed[:3] += self._rng.normal(0.0, self.noise, 3)
        return {
            "actions": np.clip(executed, -1.0, 1.0).astype(np.float32)[None],
            contract.LABEL_ACTIONS: intended,
        }


def metaworld_expert(env: MetaWorldEnv, noise: float = 0.0, seed: int | None = None) -> MetaWorldExpert:
    """The scripted expert of ``env``'s task: ``reset()`` and ``infer(obs) -> {"actions": float32[1, 4]}``;
    with ``noise``, also the intended actions under ``contract.LABEL_ACTIONS`` (see ``MetaWorldExpert``)."""
    return MetaWorldExpert(env, noise=noise, seed=seed)
