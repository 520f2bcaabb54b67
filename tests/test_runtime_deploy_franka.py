"""vla-deploy robot=franka against a fake franky and fake cameras: what reaches the arm, the report, the errors.

No robot and no camera here: ``franky`` is the fake of ``tests/fake_franky.py`` (its arm reaches each target
at once) and ``OpenCVCamera`` is replaced by one returning a flat frame. The policy is a stub that pushes the
arm at full speed towards a corner of the workspace, so the safety layer has to hold it inside.
"""

from __future__ import annotations

import json
import re
import sys
from typing import ClassVar

import numpy as np
import pytest
from fake_franky import HAND, JointMotion, ReferenceType, franky_fixture  # noqa: F401  (the franky fixture)
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from policies.runtime import deploy
from policies.runtime.deploy import DeployConfig, run
from sim import robot as sim_robot

HOST = "172.16.0.2"
WORKSPACE_LOW, WORKSPACE_HIGH = [0.15, -0.45, 0.0], [0.6, 0.45, 0.4]  # tighter than the arm's declared box
PUSH = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # +x and +z at full speed, gripper closing


class PushPolicy:
    """A fixed chunk of ``PUSH``; it reads the agentview camera at 24x32 and keeps what it was shown."""

    cameras = ("agentview",)
    image_size = (24, 32)

    def __init__(self):
        self.observations = []

    def reset(self) -> None:
        pass

    def infer(self, obs: dict) -> dict:
        self.observations.append(obs)
        return {"actions": np.tile(np.asarray(PUSH, np.float32), (20, 1))}


class FakeOpenCVCamera:
    opened: ClassVar[list[FakeOpenCVCamera]] = []

    def __init__(self, source, size=None):
        self.source, self.size, self.closed = source, size, False
        FakeOpenCVCamera.opened.append(self)

    def read(self) -> np.ndarray:
        return np.full((*self.size, 3), 90, np.uint8)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cameras(monkeypatch):
    """Every OpenCVCamera vla-deploy opens is a FakeOpenCVCamera; the list holds them."""
    FakeOpenCVCamera.opened = []
    monkeypatch.setattr("policies.runtime.camera.OpenCVCamera", FakeOpenCVCamera)
    return FakeOpenCVCamera.opened


@pytest.fixture
def policy(monkeypatch):
    stub = PushPolicy()
    monkeypatch.setattr(deploy, "make_policy", lambda config: stub)
    return stub


def _franka_config(tmp_path, **options) -> DeployConfig:
    base = dict(
        robot="franka",
        franka={"host": HOST, "cameras": {"agentview": 0}, "dynamics_factor": 0.2},
        checkpoint="stub",  # make_policy is replaced by the stub
        instruction="push the block into the corner",
        episodes_per_task=2,
        max_steps=8,
        rate_hz=200,
        out=str(tmp_path),
    )
    return DeployConfig(**{**base, **options})


def _tcp(arm, motion) -> np.ndarray:
    """The TCP pose a Cartesian motion commands (franky is sent the end effector's)."""
    return motion.target.matrix @ np.linalg.inv(arm.flange_to_ee) @ HAND


def test_the_arm_gets_only_absolute_targets_inside_the_workspace_and_homes_before_each_episode(
    tmp_path, franky, cameras, policy
):
    franky.follow = True  # the arm reaches each target, so the policy really drives it into the corner
    safety = {"workspace_low": WORKSPACE_LOW, "workspace_high": WORKSPACE_HIGH}
    doc = run(_franka_config(tmp_path, safety=safety))

    arm = franky.robots[-1]
    assert arm.host == HOST and arm.relative_dynamics_factor == 0.2
    moves = [(call[1], call[2]) for call in arm.calls if call[0] == "move"]
    kinds = "".join("J" if isinstance(motion, JointMotion) else "C" for motion, _ in moves)
    assert kinds == "J" + "C" * 8 + "J" + "C" * 8  # home, episode 0, home, episode 1
    for motion, asynchronous in moves:
        if isinstance(motion, JointMotion):  # homing: a blocking joint motion to the start posture
            assert not asynchronous and np.array_equal(motion.target, sim_robot.HOME_QPOS)
            continue
        assert asynchronous and motion.reference_type == ReferenceType.Absolute
        # 1 um: the safety layer predicts from the measured state, which is float32 (sim.contract)
        position = _tcp(arm, motion)[:3, 3]
        assert np.all(position >= np.array(WORKSPACE_LOW) - 1e-6), position
        assert np.all(position <= np.array(WORKSPACE_HIGH) + 1e-6), position
    final = _tcp(arm, moves[-1][0])[:3, 3]
    np.testing.assert_allclose(final[[0, 2]], [0.6, 0.4], atol=1e-6)  # pushed, and stopped at the walls
    assert doc["interventions"]["workspace"] > 0

    # A real robot judges nothing: no success rate, no interval; lengths, holds, interventions remain.
    assert doc["success_rate"] is None and doc["ci95"] is None and doc["judged"] == 0
    for episode in doc["episodes"]:
        assert episode["success"] is None and episode["seed"] is None
        assert episode["steps"] == 8 and episode["holds"] == 0
        assert episode["instruction"] == "push the block into the corner"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["success_rate"] is None and report["config"]["franka"]["host"] == HOST
    markdown = (tmp_path / "report.md").read_text()
    assert "success not judged" in markdown and f"robot franka (panda at {HOST})" in markdown

    # The policy saw the camera at its own image size, with the instruction it was given.
    shown = policy.observations[-1]
    assert shown["images"]["agentview"].shape == (24, 32, 3)
    assert shown["instruction"] == "push the block into the corner"
    assert [camera.source for camera in cameras] == [0] and cameras[0].closed


def test_a_dry_run_moves_nothing_not_even_to_home(tmp_path, franky, cameras, policy):
    doc = run(_franka_config(tmp_path, episodes_per_task=1, safety={"dry_run": True}))
    assert [call for call in franky.robots[-1].calls if call[0] == "move"] == []
    assert franky.grippers[-1].calls == []
    assert doc["timing"]["ticks"] == 8 and "DRY RUN" in (tmp_path / "report.md").read_text()


def _config(*overrides):
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return OmegaConf.to_object(compose("deploy", overrides=list(overrides)))


def test_config_errors_name_the_problem():
    arm = ["robot=franka", f"franka.host={HOST}", "checkpoint=runs/tiny", "max_steps=50"]
    config = _config(
        *arm, "instruction=pick up the block", "franka.cameras={agentview: 0, wrist: /dev/video2}"
    )
    assert config.franka.cameras == {"agentview": 0, "wrist": "/dev/video2"} and config.safety.enabled
    with pytest.raises(ValueError, match=re.escape("robot=franka needs franka.host")):
        _config(*arm[:1], *arm[2:], "instruction=x")
    with pytest.raises(ValueError, match=re.escape("policy=expert reads the simulator's state")):
        _config(*arm[:2], "policy=expert", "max_steps=50", "instruction=x")
    with pytest.raises(ValueError, match=re.escape('robot=franka needs instruction="..."')):
        _config(*arm)
    with pytest.raises(ValueError, match=re.escape("robot=franka needs max_steps=N")):
        _config(*arm[:3], "instruction=x")
    with pytest.raises(ValueError, match=re.escape("seed, remote only mean something for robot=sim")):
        _config(*arm, "instruction=x", "seed=200000", "remote=true")
    with pytest.raises(
        ValueError, match=re.escape("franka.cameras.wrist must be an OpenCV device index or path")
    ):
        _config(*arm, "instruction=x", "franka.cameras={wrist: true}")
    with pytest.raises(ValueError, match=re.escape("franka.model must be one of")):
        _config(*arm, "instruction=x", "franka.model=ur5")
    with pytest.raises(ValueError, match=re.escape("franka.host is set but robot=sim")):
        _config("policy=expert", f"franka.host={HOST}")


def test_a_camera_the_policy_reads_but_nobody_gave_is_named_before_the_arm_is_opened(
    tmp_path, franky, cameras, policy
):
    with pytest.raises(ValueError, match=re.escape("gives none for ['agentview']")):
        run(_franka_config(tmp_path, franka={"host": HOST, "cameras": {"wrist": 1}}))
    assert franky.robots == [] and cameras == []
    assert not (tmp_path / "report.json").exists()  # a set-up error: nothing ran


def test_without_franky_the_error_names_the_install_command_before_anything_is_opened(
    tmp_path, monkeypatch, cameras
):
    monkeypatch.setitem(sys.modules, "franky", None)  # makes `import franky` fail
    loaded = []
    monkeypatch.setattr(deploy, "make_policy", lambda config: loaded.append(config) or PushPolicy())
    with pytest.raises(ImportError, match=re.escape("pip install 'vla-stack[franka]'")):
        run(_franka_config(tmp_path))
    assert loaded == [] and cameras == []  # no model loaded for nothing, no camera left open


def test_a_failing_arm_releases_the_cameras_it_was_given(tmp_path, franky, cameras, policy):
    def unreachable(host):
        raise RuntimeError(f"Connection refused: {host}")

    franky.Robot = unreachable
    with pytest.raises(RuntimeError, match="Connection refused"):
        run(_franka_config(tmp_path))
    assert len(cameras) == 1 and cameras[0].closed


def test_a_recorded_franka_episode_claims_no_task_seed_or_success(tmp_path, franky, cameras, policy):
    from vla.data import cli
    from vla.data.meta import load_meta

    dataset = tmp_path / "arm"
    run(_franka_config(tmp_path / "report", episodes_per_task=1, rate_hz=50, record=str(dataset)))
    assert cli.main(["validate", str(dataset)]) == 0
    meta = load_meta(dataset)
    row = meta.episodes[0]
    assert meta.info["robot_type"] == "franka_panda" and meta.camera_keys and row["length"] == 8
    assert not {"vla/sim_task", "vla/seed", "vla/success"} & set(row) and row["vla/mode"] == "async"
