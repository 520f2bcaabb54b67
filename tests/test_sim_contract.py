"""The contract every registered task keeps (dm_control style): one test body, run over every task."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.contract import ACTION_DIM, CAMERAS, OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE, STATE_DIM

TASKS = sim.list_tasks()


@pytest.fixture(scope="module", params=TASKS)
def env(request):
    env = sim.make(request.param, image_size=(64, 64))
    yield env
    env.close()


def _rollout(env, seed: int, steps: int) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """States and images of ``steps`` steps under a fixed pseudo-random action sequence."""
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(123).uniform(-1, 1, (steps, ACTION_DIM)).astype(np.float32)
    states, images = [obs[OBS_STATE]], [obs[OBS_IMAGES]]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        states.append(obs[OBS_STATE])
        images.append(obs[OBS_IMAGES])
        if terminated or truncated:
            break
    return states, images


def test_at_least_eight_tasks_are_registered():
    assert len(TASKS) >= 8
    for task in TASKS:
        assert sim.gym_id(task) in __import__("gymnasium").registry


def test_observation_matches_the_documented_space(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs) == {OBS_IMAGES, OBS_STATE, OBS_INSTRUCTION}
    assert set(obs[OBS_IMAGES]) == set(CAMERAS)
    for image in obs[OBS_IMAGES].values():
        assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
        assert image.std() > 10, "camera image is blank"
    assert obs[OBS_STATE].dtype == np.float32 and obs[OBS_STATE].shape == (STATE_DIM,)
    assert np.isfinite(obs[OBS_STATE]).all()
    assert isinstance(obs[OBS_INSTRUCTION], str) and obs[OBS_INSTRUCTION] == info["instruction"]
    assert env.action_space.shape == (ACTION_DIM,)
    obs, reward, _, _, info = env.step(np.zeros(ACTION_DIM, np.float32))
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and info["task"] == env.unwrapped.task.name


def test_same_seed_same_episode_bit_for_bit(env):
    states_a, images_a = _rollout(env, seed=7, steps=8)
    states_b, images_b = _rollout(env, seed=7, steps=8)
    assert len(states_a) == len(states_b)
    for a, b in zip(states_a, states_b, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(images_a, images_b, strict=True):
        for camera in a:
            np.testing.assert_array_equal(a[camera], b[camera])


def test_different_seeds_randomize_the_scene(env):
    first, _ = env.reset(seed=1)
    layouts = {tuple(env.unwrapped.world.data.qpos.round(4))}
    images = [first[OBS_IMAGES]["agentview"]]
    for seed in (2, 3):
        obs, _ = env.reset(seed=seed)
        layouts.add(tuple(env.unwrapped.world.data.qpos.round(4)))
        images.append(obs[OBS_IMAGES]["agentview"])
    assert len(layouts) == 3
    assert not np.array_equal(images[0], images[1])


def test_instructions_have_several_paraphrases(env):
    task = env.unwrapped.task
    assert len(task.instructions) >= 3
    seen = {env.reset(seed=s)[1]["instruction"] for s in range(12)}
    assert len(seen) >= 3


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task):
    env = sim.make(task, cameras=())
    expert = sim.make_expert(env)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        terminated = truncated = False
        while not (terminated or truncated):
            chunk = expert.infer(obs)["actions"]
            assert chunk.shape == (1, ACTION_DIM) and chunk.dtype == np.float32
            obs, _, terminated, truncated, info = env.step(chunk[0])
        assert info["success"], f"{task} expert failed on seed {seed}: {info['instruction']}"
    env.close()


BAD_ACTIONS = {
    "wrong shape": (np.zeros(6, np.float32), "shape"),
    "a chunk": (np.zeros((2, 7), np.float32), "shape"),
    "integer dtype": (np.zeros(7, np.int64), "dtype"),
    "NaN": (np.array([0, 0, np.nan, 0, 0, 0, 0], np.float32), "NaN"),
    "inf": (np.array([0, 0, 0, 0, np.inf, 0, 0], np.float32), "inf"),
    "out of range": (np.array([0, 0, 0, 0, 0, 0, 1.5], np.float32), "gripper"),
}


@pytest.mark.parametrize("case", list(BAD_ACTIONS))
def test_bad_action_raises_and_nothing_reaches_the_physics(env, case):
    action, message = BAD_ACTIONS[case]
    env.reset(seed=0)
    data = env.unwrapped.world.data
    before = (data.time, data.qpos.copy(), data.ctrl.copy())
    with pytest.raises(ValueError, match=message):
        env.step(action)
    assert data.time == before[0]
    np.testing.assert_array_equal(data.qpos, before[1])
    np.testing.assert_array_equal(data.ctrl, before[2])


def test_stepping_a_finished_episode_raises():
    env = sim.make(TASKS[0], cameras=(), max_steps=2)
    env.reset(seed=0)
    env.step(np.zeros(ACTION_DIM, np.float32))
    _, _, _, truncated, _ = env.step(np.zeros(ACTION_DIM, np.float32))
    assert truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(ACTION_DIM, np.float32))


def test_unstable_physics_truncates_with_a_flag_and_finite_observations(env):
    obs, _ = env.reset(seed=0)
    env.unwrapped.world.data.qvel[:] = 1e12  # a blow-up, as a bad model or contact would cause
    obs, reward, terminated, truncated, info = env.step(np.zeros(ACTION_DIM, np.float32))
    assert truncated and not terminated and info["physics_unstable"] and reward == 0.0
    assert np.isfinite(obs[OBS_STATE]).all()
    with pytest.raises(RuntimeError):
        env.step(np.zeros(ACTION_DIM, np.float32))


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(ValueError, match="available tasks") as error:
        sim.make("FoldLaundry")
    assert all(task in str(error.value) for task in TASKS)
