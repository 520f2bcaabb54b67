"""FrankaRobot against a fake franky: an action means on the arm what it means in the simulator.

There is no robot here. A small fake of the franky API (``franky`` in ``sys.modules``) records every call and
reports whatever pose a test sets, so these tests check the adapter's side of the contract: targets, motion
calls, the gripper thread, the observation layout. franky's and the robot's own behaviour are not tested.
"""

from __future__ import annotations

import re
import sys
import time
import types

import numpy as np
import pytest
from fake_franky import HAND, FakeRobot, ReferenceType, franky_fixture  # noqa: F401  (the franky fixture)
from fake_franky import pose as _pose

import sim
from policies.runtime.franka import FrankaRobot, franka_limits
from sim import robot as sim_robot
from sim.contract import OBS_IMAGES, OBS_STATE, validate_action
from sim.controller import next_commanded_pose


def _wait_until(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.001)


def _open(franky, **options):
    arm = FrankaRobot("172.16.0.2", **options)
    return arm, franky.robots[-1], franky.grippers[-1]


def _sent_tcp(arm_robot: FakeRobot, call) -> np.ndarray:
    """The TCP pose a move() call commands (its target is the end effector's)."""
    ee_to_tcp = np.linalg.inv(arm_robot.flange_to_ee) @ HAND
    return call[1].target.matrix @ ee_to_tcp


# -- (a) the simulator's targets, replayed -------------------------------------------------------------------
def _held_random_actions(seed: int):
    """Full-scale random actions, each held for 5 steps: they drive the target into its lead and rotation
    limits, which a scripted expert seldom does."""
    rng = np.random.default_rng(seed)
    action = None
    for step in range(40):
        if step % 5 == 0:
            action = rng.choice([-1.0, 1.0], 7).astype(np.float32)
        yield action


def _sim_episode(policy: str, seed: int):
    """Per step of a PickUp episode: (measured TCP before, action, commanded before, commanded after)."""
    env = sim.make("PickUp", cameras=())
    obs, _ = env.reset(seed=seed)
    world, controller = env.unwrapped.world, env.unwrapped.controller
    expert = sim.make_expert(env, noise=0.3, seed=seed)
    random_actions = _held_random_actions(seed)
    steps = []
    for _ in range(200):
        action = expert.infer(obs)["actions"][0] if policy == "expert" else next(random_actions, None)
        if action is None:
            break
        measured = _pose(world.tcp_pos, world.tcp_mat)
        before = (controller.target_pos.copy(), controller.target_mat.copy())
        obs, _, terminated, truncated, _ = env.step(action)
        after = _pose(controller.target_pos, controller.target_mat)
        steps.append((measured, validate_action(action), before, after))
        if terminated or truncated:
            break
    env.close()
    return steps


@pytest.mark.parametrize("desk_ee", ["flange", "franka_hand"])
@pytest.mark.parametrize("policy", ["expert", "held_random"])
def test_the_arm_is_sent_the_simulators_targets_for_a_recorded_episode(franky, policy, desk_ee):
    franky.flange_to_ee = np.eye(4) if desk_ee == "flange" else HAND
    steps = _sim_episode(policy, seed=0)
    assert len(steps) >= 40
    arm, fake, _ = _open(franky)
    fake.set_tcp(steps[0][0])  # at reset the simulator commands the pose the arm is in
    arm.home()
    clamped = {"translation": 0, "rotation": 0}
    for measured, action, before, after in steps:
        # The simulator's controller calls next_commanded_pose with its defaults: bit for bit the same.
        pos, mat = next_commanded_pose(*before, measured[:3, 3], measured[:3, :3], action)
        assert np.array_equal(pos, after[:3, 3]) and np.array_equal(mat, after[:3, :3])
        free = next_commanded_pose(*before, measured[:3, 3], measured[:3, :3], action, 0.05, 0.25, 9, 9)
        clamped["translation"] += not np.allclose(free[0], pos)
        clamped["rotation"] += not np.allclose(free[1], mat)

        fake.set_tcp(measured)
        arm.act(action)
        np.testing.assert_allclose(_sent_tcp(fake, fake.moves()[-1]), after, atol=1e-9)
    # The replay covered the limits, where a wrong measured pose or limit would show.
    assert clamped["translation"] > 0
    assert policy == "expert" or clamped["rotation"] > 0


def test_a_blocked_arm_does_not_wind_up_its_target(franky):
    arm, fake, _ = _open(franky)
    start = fake.o_t_ee @ np.linalg.inv(fake.flange_to_ee) @ HAND
    for _ in range(10):  # the arm never moves: the target stops 0.08 m ahead, as in the simulator
        arm.act(np.array([1.0, 0, 0, 0, 0, 0, 0]))
    np.testing.assert_allclose(arm.last_target[:3, 3], start[:3, 3] + [0.08, 0, 0], atol=1e-12)


def test_dry_run_computes_targets_and_moves_nothing(franky):
    arm, fake, hand = _open(franky, dry_run=True)
    start = arm.state()[:3].astype(np.float64)
    arm.act(np.array([0.0, 1.0, 0, 0, 0, 0, 1.0]))
    np.testing.assert_allclose(arm.last_target[:3, 3], start + [0, 0.05, 0], atol=1e-6)
    arm.home()
    arm.stop()
    assert fake.moves() == [] and hand.calls == []


# -- (b) preemption ------------------------------------------------------------------------------------------
def test_every_act_sends_one_absolute_asynchronous_motion(franky):
    arm, fake, _ = _open(franky)
    assert fake.relative_dynamics_factor == 0.1  # gentle unless asked otherwise
    for i in range(3):
        arm.act(np.array([0.2, 0.0, -0.1, 0.0, 0.1, 0.0, -1.0]))
        assert len(fake.calls) == i + 1
        _, motion, asynchronous = fake.calls[-1]
        assert asynchronous and motion.reference_type == ReferenceType.Absolute
        assert not motion.return_when_finished  # held until the next act() replaces it


# -- (c) gripper, stop --------------------------------------------------------------------------------------
def test_gripper_plus_one_grasps_minus_one_opens_and_zero_keeps(franky):
    arm, _, hand = _open(franky, grasp_force=15.0)
    zero = np.zeros(7)
    for value, expected in [(1.0, ("grasp", 0.0, 15.0)), (0.0, None), (-0.4, ("move", 0.08))]:
        arm.act(np.concatenate([zero[:6], [value]]))
        assert arm.wait_for_gripper(2.0)
        if expected is not None:
            assert hand.calls[-1] == expected
    assert len(hand.calls) == 2


def test_gripper_width_mode_follows_the_action_like_the_simulator(franky):
    arm, _, hand = _open(franky, gripper_mode="width")
    for value in (0.0, 0.001, 1.0, -1.0):
        arm.act(np.array([0, 0, 0, 0, 0, 0, value]))
        assert arm.wait_for_gripper(2.0)
    # 0.001 is within 5 mm of 0.0 and is not re-sent
    assert hand.calls == [("move", 0.04), ("move", 0.0), ("move", 0.08)]


def test_gripper_runs_on_its_own_thread_and_only_the_newest_command_waits(franky):
    arm, _, hand = _open(franky)
    hand.gate.clear()
    began = time.monotonic()
    arm.act(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    _wait_until(lambda: hand.calls)  # the grasp has begun and blocks
    for value in (-1.0, 1.0, -1.0):
        arm.act(np.array([0, 0, 0, 0, 0, 0, value]))
    assert time.monotonic() - began < 0.5, "act() waited for the gripper"
    hand.gate.set()
    assert arm.wait_for_gripper(2.0)
    assert [call[0] for call in hand.calls] == ["grasp", "move"]


def test_a_failed_gripper_command_is_raised_at_the_next_act(franky):
    arm, _, hand = _open(franky)
    hand.fail = True
    arm.act(np.array([0, 0, 0, 0, 0, 0, -1.0]))
    arm.wait_for_gripper(2.0)
    with pytest.raises(RuntimeError, match="gripper's last command failed"):
        arm.act(np.zeros(7))


def test_stop_is_idempotent_keeps_the_grasp_and_the_next_act_starts_where_the_arm_is(franky):
    arm, fake, hand = _open(franky)
    hand.gate.clear()
    arm.act(np.array([1.0, 0, 0, 0, 0, 0, 1.0]))
    _wait_until(lambda: hand.calls)  # grasp running
    arm.act(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))  # open waiting
    arm.stop()
    arm.stop()
    assert [call[0] for call in fake.calls].count("stop") == 1
    hand.gate.set()
    assert arm.wait_for_gripper(2.0)
    assert [call[0] for call in hand.calls] == ["grasp"]  # the waiting open was dropped

    here = _pose([0.42, 0.1, 0.2], np.diag([1.0, -1.0, -1.0]))
    fake.set_tcp(here)
    arm.act(np.zeros(7))
    np.testing.assert_allclose(_sent_tcp(fake, fake.moves()[-1]), here, atol=1e-12)


def test_home_ends_the_cartesian_motion_then_moves_the_joints_and_opens(franky):
    arm, fake, hand = _open(franky)
    arm.act(np.array([0.5, 0, 0, 0, 0, 0, 1.0]))
    arm.wait_for_gripper(2.0)
    fake.calls.clear()
    arm.home()
    names = [call[0] for call in fake.calls]
    assert names == ["stop", "join_motion", "recover_from_errors", "move"]
    _, motion, asynchronous = fake.calls[-1]
    assert not asynchronous and np.array_equal(motion.target, sim_robot.HOME_QPOS)
    assert hand.calls[-1] == ("move", 0.08)
    arm.act(np.zeros(7))  # the commanded pose restarts from the measured one
    np.testing.assert_allclose(arm.last_target, fake.o_t_ee @ np.linalg.inv(fake.flange_to_ee) @ HAND)


# -- (d) franky missing ----------------------------------------------------------------------------------------
def test_missing_franky_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "franky", None)  # makes `import franky` fail
    with pytest.raises(ImportError, match=re.escape("pip install 'vla-stack[franka]'")):
        FrankaRobot("172.16.0.2")


# -- (e) observation -----------------------------------------------------------------------------------------
class FakeCamera:
    def __init__(self, frame):
        self.frame = frame

    def read(self):
        return self.frame


def test_observe_has_the_simulators_state_layout_for_the_same_pose(franky):
    env = sim.make("PickUp", cameras=())
    obs, _ = env.reset(seed=5)
    world = env.unwrapped.world
    image = np.full((48, 64, 3), 7, np.uint8)
    arm, fake, hand = _open(franky, cameras={"agentview": FakeCamera(image)})
    fake.set_tcp(_pose(world.tcp_pos, world.tcp_mat))
    fake.q, hand.width = world.arm_qpos, world.gripper_opening
    observed = arm.observe()
    assert observed[OBS_STATE].dtype == np.float32 and observed[OBS_STATE].shape == (17,)
    np.testing.assert_allclose(observed[OBS_STATE], obs[OBS_STATE], rtol=0, atol=1e-6)
    assert observed[OBS_IMAGES]["agentview"] is image
    env.close()


def test_a_camera_returning_the_wrong_kind_of_frame_is_named(franky):
    arm, _, _ = _open(franky, cameras={"wrist": FakeCamera(np.zeros((48, 64), np.float32))})
    with pytest.raises(ValueError, match="camera 'wrist'"):
        arm.observe()


def test_limits_declare_the_joint_limits_and_the_simulators_steps():
    panda = franka_limits()
    np.testing.assert_array_equal(panda.joint_low, [row.lower for row in sim_robot.PANDA_DH])
    assert (panda.translation_step, panda.rotation_step) == (0.05, 0.25)
    assert franka_limits("fr3").joint_high[5] == pytest.approx(4.5169)
    with pytest.raises(ValueError, match="model must be one of"):
        franka_limits("ur5")


def test_opencv_camera_returns_rgb_at_the_asked_size_and_needs_no_hard_cv2(monkeypatch):
    from policies.runtime.camera import OpenCVCamera

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="opencv"):
        OpenCVCamera(0)

    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's channel order

    class Capture:
        def __init__(self, source):
            self.settings = {}

        def isOpened(self):  # OpenCV's method name
            return True

        def set(self, prop, value):
            self.settings[prop] = value

        def read(self):
            return True, bgr.copy()

    cv2 = types.SimpleNamespace(
        VideoCapture=Capture,
        CAP_PROP_BUFFERSIZE=38,
        COLOR_BGR2RGB=4,
        INTER_AREA=3,
        cvtColor=lambda frame, code: frame[..., ::-1],
        resize=lambda frame, size, interpolation: np.zeros((size[1], size[0], 3), np.uint8) + frame[0, 0],
    )
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    frame = OpenCVCamera(0, size=(2, 3)).read()
    assert frame.shape == (2, 3, 3) and frame[0, 0].tolist() == [0, 0, 200]
