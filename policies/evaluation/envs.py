"""The evaluator's environments: one task's environment ``num_envs`` times, in-process or vectorized.

``EvalEnv`` wraps a task's environment for evaluation. After its episode ends it idles (a step returns the
final transition again and touches nothing), because a vectorized environment steps all its environments at
once and some have no episode left to run. It records ``env.render()`` frames when ``recording`` is set,
runs the scripted expert when the policy is the expert (see ``policies.expert_policy``), and resets as the
instruction mode set by ``set_instruction`` has it (``policies.evaluation.instruction``).

A pool holds ``num_envs`` such environments, addressed by slot: ``InProcessPool`` (a list, in this process)
or ``AsyncPool`` (gymnasium's ``AsyncVectorEnv``, spawned processes: MuJoCo's renderers must not be forked).
Both answer ``reset({slot: seed}, {slot: record})`` and ``step({slot: action})`` with per-slot
observations, so the evaluation loop does not care which it drives.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from policies import suites
from policies.evaluation import instruction
from policies.expert_policy import EXPERT_ACTIONS
from policies.parent_watch import exit_with_parent


class Transition(NamedTuple):
    obs: dict
    terminated: bool
    truncated: bool
    info: dict  # success, task, instruction, steps, physics_unstable


class EvalEnv(gym.Wrapper):
    def __init__(
        self, env: gym.Env, index: int = 0, expert_noise: float | None = None, task: str | None = None
    ):
        super().__init__(env)
        self.index = index  # the slot, so that take_frames() answers only for its own
        self.expert_noise = expert_noise
        self.task_id = task  # picks the expert's suite (suites.of); None: ours
        self._action_dim = env.action_space.shape[0]  # 7 in sim, 4 in Meta-World
        self.recording = False  # read at reset: record this episode's frames
        self._frames: list[np.ndarray] = []
        self._final: tuple | None = None  # the last transition of a finished episode
        self._expert = None
        self.instruction_mode, self.heldout_template = instruction.NORMAL, None
        self._extra: dict = {}  # the instruction mode's facts of this episode, added to every info
        if expert_noise is not None:
            expert_space = gym.spaces.Box(-1.0, 1.0, (1, self._action_dim), np.float32)
            self.observation_space = gym.spaces.Dict(
                {**env.observation_space.spaces, EXPERT_ACTIONS: expert_space}
            )

    def set_instruction(self, mode: str, heldout_template: str | None = None) -> None:
        """How the next resets choose the instruction (``policies.evaluation.instruction.MODES``)."""
        self.instruction_mode, self.heldout_template = mode, heldout_template

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # ``options``: a vector environment's (empty once it took its reset mask); the mode decides.
        obs, info = instruction.reset_episode(self.env, seed, self.instruction_mode, self.heldout_template)
        self._extra = {key: info[key] for key in instruction.EPISODE_KEYS if key in info}
        self._final = None
        self._frames = [self.env.render()] if self.recording else []
        if self.expert_noise is not None:
            # Seeded by the episode seed, created after the reset: exactly as vla-sim-report runs it.
            self._expert = suites.of(self.task_id).make_expert(
                self.task_id, self.env, self.expert_noise, seed
            )
        return self._with_expert(obs, done=False), info

    def step(self, action):
        if self._final is not None:
            return self._final
        obs, reward, terminated, truncated, info = self.env.step(action)
        # What the policy read at the reset, on every step (blank's "", wordings' wording), not the env's own.
        obs = instruction.policy_view(obs, self._extra.get(instruction.POLICY_INSTRUCTION))
        info = {**info, **self._extra}
        if self.recording:
            self._frames.append(self.env.render())
        done = terminated or truncated
        transition = (self._with_expert(obs, done), reward, terminated, truncated, info)
        if done:
            self._final = transition
        return transition

    def take_frames(self, index: int) -> np.ndarray | None:
        """uint8 (T + 1, H, W, 3): the recorded episode's frames if ``index`` is this slot, else None."""
        if index != self.index or not self._frames:
            return None
        frames, self._frames = np.stack(self._frames), []
        return frames

    def _with_expert(self, obs: dict, done: bool) -> dict:
        if self.expert_noise is None:
            return obs
        # The expert is asked exactly once per step, here; a finished episode needs no further action.
        actions = np.zeros((1, self._action_dim), np.float32) if done else self._expert.infer(obs)["actions"]
        return {**obs, EXPERT_ACTIONS: actions}


def make_eval_env(task: str, config, index: int = 0, expert_noise: float | None = None) -> EvalEnv:
    """Top level, so that spawned workers can unpickle it as an environment factory. ``config``: the
    settings of ``task``'s suite (``Suite.eval_settings``: a ``sim.EnvConfig`` for our tasks).

    In a worker, it also makes the worker exit when the evaluator dies (even by SIGKILL), not linger.
    """
    exit_with_parent()
    env = suites.of(task).make_eval_env(task, config)
    return EvalEnv(env, index, expert_noise, task)


class InProcessPool:
    def __init__(self, env_fns):
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.max_steps = self.envs[0].unwrapped.max_steps
        self.fps = self.envs[0].metadata["render_fps"]  # the control rate, in both simulators

    def set_instruction(self, mode: str, heldout_template: str | None = None) -> None:
        for env in self.envs:
            env.set_instruction(mode, heldout_template)

    def reset(self, seeds: dict[int, int], recording: dict[int, bool]) -> dict[int, dict]:
        observations = {}
        for slot, seed in seeds.items():
            self.envs[slot].recording = recording[slot]
            observations[slot], _ = self.envs[slot].reset(seed=seed)
        return observations

    def step(self, actions: dict[int, np.ndarray]) -> dict[int, Transition]:
        out = {}
        for slot, action in actions.items():
            obs, _, terminated, truncated, info = self.envs[slot].step(action)
            out[slot] = Transition(obs, bool(terminated), bool(truncated), info)
        return out

    def take_frames(self, slot: int) -> np.ndarray | None:
        return self.envs[slot].take_frames(slot)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _unbatch(value, slot: int):
    """One environment's entry of a batched observation: dicts recurse, arrays and tuples are indexed."""
    if isinstance(value, dict):
        return {key: _unbatch(item, slot) for key, item in value.items()}
    return value[slot]


def _unbatch_info(info: dict, slot: int) -> dict:
    # gymnasium merges infos into arrays with a "_key" mask saying which environments set "key"
    return {
        key: value[slot].item() if isinstance(value[slot], np.generic) else value[slot]
        for key, value in info.items()
        if not key.startswith("_") and info[f"_{key}"][slot]
    }


class AsyncPool:
    def __init__(self, env_fns):
        # No shared memory: gymnasium's shared-memory buffers cannot carry the instruction (a Text space).
        self.vec = AsyncVectorEnv(
            env_fns, shared_memory=False, context="spawn", autoreset_mode=AutoresetMode.DISABLED
        )
        self.num_envs = self.vec.num_envs
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        self.max_steps = self.vec.get_attr("max_steps")[0]
        self.fps = self.vec.get_attr("metadata")[0]["render_fps"]
        self._recording = [False] * self.num_envs

    def set_instruction(self, mode: str, heldout_template: str | None = None) -> None:
        self.vec.call("set_instruction", mode, heldout_template)

    def reset(self, seeds: dict[int, int], recording: dict[int, bool]) -> dict[int, dict]:
        flags = [recording.get(slot, flag) for slot, flag in enumerate(self._recording)]
        if flags != self._recording:
            self.vec.set_attr("recording", flags)
            self._recording = flags
        mask = np.array([slot in seeds for slot in range(self.num_envs)])
        obs, _ = self.vec.reset(
            seed=[seeds.get(slot) for slot in range(self.num_envs)], options={"reset_mask": mask}
        )
        return {slot: _unbatch(obs, slot) for slot in seeds}

    def step(self, actions: dict[int, np.ndarray]) -> dict[int, Transition]:
        batch = np.zeros((self.num_envs, *self.single_action_space.shape), np.float32)  # idle slots: ignored
        for slot, action in actions.items():
            batch[slot] = action
        obs, _, terminated, truncated, info = self.vec.step(batch)
        return {
            slot: Transition(
                _unbatch(obs, slot), bool(terminated[slot]), bool(truncated[slot]), _unbatch_info(info, slot)
            )
            for slot in actions
        }

    def take_frames(self, slot: int) -> np.ndarray | None:
        return self.vec.call("take_frames", slot)[slot]

    def close(self) -> None:
        self.vec.close()


def make_pool(
    task: str, config, num_envs: int, expert_noise: float | None = None
) -> InProcessPool | AsyncPool:
    """``num_envs`` environments of ``task`` (``config``: its suite's settings, as for ``make_eval_env``): in
    this process for 1, spawned worker processes beyond."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    env_fns = [partial(make_eval_env, task, config, i, expert_noise) for i in range(num_envs)]
    return InProcessPool(env_fns) if num_envs == 1 else AsyncPool(env_fns)
