"""The robot model matches the Panda's published kinematics, and the Cartesian action does what it says."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sim
from sim import gl, robot
from sim.contract import ACTION_DIM, OBS_STATE, STATE_NAMES
from sim.controller import MAX_TRANSLATION


def _dh_flange(q: np.ndarray) -> np.ndarray:
    """Flange pose from Franka's modified DH table, computed independently of MuJoCo."""

    def rot_x(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])

    def rot_z(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])

    def trans(x=0.0, z=0.0):
        t = np.eye(4)
        t[0, 3], t[2, 3] = x, z
        return t

    pose = np.eye(4)
    for row, angle in zip(robot.PANDA_DH, q, strict=True):
        pose = pose @ rot_x(row.alpha) @ trans(x=row.a) @ rot_z(angle) @ trans(z=row.d)
    return pose @ trans(z=robot.FLANGE_D)


def test_forward_kinematics_match_the_panda_dh_parameters():
    env = sim.make("PickUp", cameras=())
    world = env.unwrapped.world
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(world.arm_limits[:, 0], world.arm_limits[:, 1])
        world.set_arm_qpos(q)
        world.forward()
        expected = _dh_flange(q)
        hand = world.body_id(robot.HAND_BODY)
        np.testing.assert_allclose(world.data.xpos[hand], expected[:3, 3], atol=1e-9)
        hand_z = world.data.xmat[hand].reshape(3, 3)[:, 2]
        np.testing.assert_allclose(hand_z, expected[:3, 2], atol=1e-9)


def test_joint_limits_are_the_pandas():
    env = sim.make("PickUp", cameras=())
    limits = env.unwrapped.world.arm_limits
    np.testing.assert_allclose(limits[3], [-3.0718, -0.0698])
    np.testing.assert_allclose(limits[5], [-0.0175, 3.7525])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_translation_action_moves_the_tcp_along_that_world_axis(axis):
    env = sim.make("PressButton", cameras=(), joint_noise=0.0)
    obs, _ = env.reset(seed=0)
    start = obs[OBS_STATE][:3].copy()
    action = np.zeros(ACTION_DIM, np.float32)
    action[axis] = -1.0 if axis == 2 else 1.0  # down for z, away from obstacles
    action[6] = 1.0
    for _ in range(3):
        obs, *_ = env.step(action)
    moved = obs[OBS_STATE][:3] - start
    expected = 3 * MAX_TRANSLATION * action[axis]
    assert abs(moved[axis] - expected) < 0.015, moved
    others = [i for i in range(3) if i != axis]
    assert np.abs(moved[others]).max() < 0.01, moved


def test_gripper_minus_one_opens_plus_one_closes():
    env = sim.make("PressButton", cameras=())
    obs, _ = env.reset(seed=0)
    index = STATE_NAMES.index("gripper_opening")
    assert obs[OBS_STATE][index] == pytest.approx(0.08, abs=2e-3)
    close = np.zeros(ACTION_DIM, np.float32)
    close[6] = 1.0
    for _ in range(3):
        obs, *_ = env.step(close)
    assert obs[OBS_STATE][index] < 0.005
    for _ in range(3):
        obs, *_ = env.step(-close)
    assert obs[OBS_STATE][index] > 0.075


def test_rotation_action_turns_the_gripper_about_world_z():
    env = sim.make("PressButton", cameras=())
    env.reset(seed=0)
    yaw = env.unwrapped.world.tcp_mat[:, 0]
    action = np.zeros(ACTION_DIM, np.float32)
    action[5] = 1.0
    for _ in range(2):
        env.step(action)
    turned = env.unwrapped.world.tcp_mat[:, 0]
    angle = np.arctan2(np.cross(yaw, turned)[2], yaw @ turned)
    assert angle == pytest.approx(0.5, abs=0.06)  # 2 steps of MAX_ROTATION = 0.25 rad


def test_gl_backend_respects_the_users_choice(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert gl.choose_backend() == "osmesa"
    assert os.environ["MUJOCO_GL"] == "osmesa"


def test_missing_gl_backend_error_names_the_system_packages():
    message = gl.missing_backend_message(RuntimeError("eglInitialize failed"))
    assert "libegl1" in message and "libosmesa6" in message and "MUJOCO_GL" in message


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown cameras"):
        sim.make("PickUp", cameras=("left_shoulder",))
    with pytest.raises(ValueError, match="image_size"):
        sim.make("PickUp", image_size=(4, 4))
    with pytest.raises(ValueError, match="control_hz"):
        sim.make("PickUp", control_hz=0)
