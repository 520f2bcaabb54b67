"""Robot plugins: names from the ``vla_stack.robots`` entry points or ``module:Class`` paths, ``check_robot``,
and docs/robots.md's worked example (the very code block, written out and imported) driven by vla-deploy."""

from __future__ import annotations

import importlib
import json
import re
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from fake_franky import franky_fixture  # noqa: F401  (the franky fixture)

from policies.runtime import deploy, robots
from policies.runtime.conformance import RobotContractError, check_robot
from policies.runtime.deploy import DeployConfig, run
from policies.runtime.franka import FrankaRobot
from policies.runtime.sim_robot import SimRobot
from sim import robot as sim_robot
from vla.data.meta import load_meta

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "<!-- example: toy_arm.py -->"
PUSH = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # +x and +z at full speed, gripper closing


def example_code() -> str:
    """The python block of docs/robots.md that follows the example marker."""
    text = (ROOT / "docs" / "robots.md").read_text()
    found = re.search(re.escape(EXAMPLE) + r"\s*```python\n(.*?)```", text, re.S)
    assert found, f"docs/robots.md lost its {EXAMPLE} block"
    return found.group(1)


@pytest.fixture
def toy_arm(tmp_path, monkeypatch):
    """docs/robots.md's example as module ``toy_arm`` on sys.path; its ``ToyArm`` class."""
    (tmp_path / "toy_arm.py").write_text(example_code())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "toy_arm", raising=False)
    return importlib.import_module("toy_arm").ToyArm


@pytest.fixture
def registered_toy(monkeypatch):
    """An installed package registering ``toy`` -> ``toy_arm:ToyArm`` (the entry points, monkeypatched)."""
    point = EntryPoint(name="toy", value="toy_arm:ToyArm", group=robots.GROUP)
    monkeypatch.setattr(robots, "entry_points", lambda group: [point] if group == robots.GROUP else [])


class PushPolicy:
    """A fixed chunk of ``PUSH`` for the agentview camera."""

    cameras = ("agentview",)
    image_size = (24, 32)

    def reset(self) -> None:
        pass

    def infer(self, obs: dict) -> dict:
        assert obs["images"]["agentview"].shape == (24, 32, 3)
        return {"actions": np.tile(np.asarray(PUSH, np.float32), (10, 1))}


@pytest.fixture
def policy(monkeypatch):
    monkeypatch.setattr(deploy, "make_policy", lambda config: PushPolicy())


def test_the_built_in_table_is_what_pyproject_registers():
    # The section's `name = "module:Class"` lines (tomllib is Python 3.11+; the stack supports 3.10).
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split(f'[project.entry-points."{robots.GROUP}"]\n', 1)[1].split("\n[", 1)[0]
    declared = dict(re.findall(r'^(\w+) = "([^"]+)"', section, re.M))
    assert declared == robots.BUILT_IN
    assert robots.load_robot_class("sim") is SimRobot and robots.load_robot_class("franka") is FrankaRobot


def test_the_docs_example_keeps_the_contract(toy_arm):
    assert check_robot(toy_arm()) == {"cameras": ["agentview"], "predicts_joints": False}


def test_vla_deploy_drives_the_example_by_path_and_by_registered_name(
    toy_arm, registered_toy, policy, tmp_path
):
    options = dict(checkpoint="stub", instruction="push it", episodes_per_task=2, max_steps=6, rate_hz=200)
    doc = run(DeployConfig(robot="toy_arm:ToyArm", robot_options={"image_size": [24, 32]}, **options,
                           out=str(tmp_path / "path"), record=str(tmp_path / "data")))  # fmt: skip
    assert [episode["steps"] for episode in doc["episodes"]] == [6, 6]
    assert doc["success_rate"] is None  # a real robot's episodes are not judged
    # Full speed along x and z (0.07 m a step) against the toy arm's own 0.03 m cap: the layer capped it.
    assert doc["interventions"]["translation_cap"] > 0
    assert "robot toy_arm:ToyArm, 200 Hz" in (tmp_path / "path" / "report.md").read_text()
    assert load_meta(tmp_path / "data").info["robot_type"] == "toy_arm"
    by_name = run(
        DeployConfig(robot="toy", robot_options={"image_size": [24, 32]}, **options, out=str(tmp_path))
    )
    assert [episode["steps"] for episode in by_name["episodes"]] == [6, 6]
    assert json.loads((tmp_path / "report.json").read_text())["config"]["robot"] == "toy"


def test_an_unregistered_name_lists_the_registered_ones(registered_toy, toy_arm):
    assert robots.registered() == {**robots.BUILT_IN, "toy": "toy_arm:ToyArm"}
    with pytest.raises(
        ValueError,
        match=re.escape("robot 'ur5' is not registered; registered robots: ['franka', 'sim', 'toy']"),
    ):
        DeployConfig(robot="ur5", checkpoint="stub", instruction="x", max_steps=5)  # fmt: skip
    with pytest.raises(ValueError, match=re.escape("robot 'nowhere.arm:Arm': cannot import 'nowhere.arm'")):
        DeployConfig(robot="nowhere.arm:Arm", checkpoint="stub", instruction="x", max_steps=5)
    with pytest.raises(ValueError, match=re.escape("module 'toy_arm' has no class 'Arm'")):
        DeployConfig(robot="toy_arm:Arm", checkpoint="stub", instruction="x", max_steps=5)


def test_a_plugin_robot_is_a_real_robot_to_vla_deploy(registered_toy, toy_arm):
    with pytest.raises(ValueError, match=re.escape('robot=toy needs instruction="..."')):
        DeployConfig(robot="toy", checkpoint="stub", max_steps=5)
    with pytest.raises(ValueError, match=re.escape("robot=toy needs max_steps=N")):
        DeployConfig(robot="toy", checkpoint="stub", instruction="x")
    with pytest.raises(ValueError, match="policy=expert reads the simulator's state"):
        DeployConfig(robot="toy", policy="expert", instruction="x", max_steps=5)
    with pytest.raises(ValueError, match=re.escape("robot_options are a plugin robot's keyword arguments")):
        DeployConfig(policy="expert", robot_options={"port": 1})
    with pytest.raises(ValueError, match=re.escape("franka.host is set but robot=toy")):
        DeployConfig(
            robot="toy", checkpoint="stub", instruction="x", max_steps=5, franka={"host": "10.0.0.2"}
        )


def test_the_simulated_and_the_franka_robots_keep_the_contract(franky):
    robot = SimRobot("PickUp", image_size=(32, 32))
    try:
        robot.reset(0)
        assert check_robot(robot) == {"cameras": ["agentview", "wrist"], "predicts_joints": True}
    finally:
        robot.close()
    franky.follow = True  # the fake arm reaches each target
    arm = FrankaRobot("172.16.0.2")
    franky.robots[-1].q = np.array(sim_robot.HOME_QPOS, dtype=np.float64)  # a posture inside the joint ranges
    assert check_robot(arm) == {"cameras": [], "predicts_joints": False}


def test_every_broken_rule_is_named(toy_arm):
    class Broken(toy_arm):
        def __init__(self):
            super().__init__()
            self.limits.joint_low = np.full(7, -np.inf)  # no joint ranges declared

        def state(self):
            return super().state().astype(np.float64)  # the contract's state is float32

        def act(self, action):  # no validation: NaN and out-of-range actions pass
            self.tcp = self.tcp + np.asarray(action)[:3] * 0.05

    with pytest.raises(RobotContractError) as error:
        check_robot(Broken())
    message = str(error.value)
    assert "limits: joint_low and joint_high must declare the 7 arm joints' finite ranges" in message
    assert "state must be float32 (17,) and finite, got float64 (17,)" in message

    class Accepting(toy_arm):
        def act(self, action):
            self.tcp = self.tcp + np.nan_to_num(np.asarray(action, dtype=np.float64).reshape(-1)[:3]) * 0.05

        def stop(self):
            if getattr(self, "stopped", False):
                raise RuntimeError("already stopped")
            self.stopped = True

    with pytest.raises(RobotContractError) as error:
        check_robot(Accepting())
    lines = str(error.value).splitlines()
    assert "act(NaN action) was accepted: a robot must refuse it with ValueError" in lines
    assert "act(out-of-range (1.5) action) was accepted: a robot must refuse it with ValueError" in lines
    assert "stop() raised RuntimeError: already stopped" in lines
