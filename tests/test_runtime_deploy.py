"""vla-deploy end to end on the simulated robot: the same episodes as vla-eval, recording, reports, e-stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from policies.evaluation.evaluate import evaluate
from policies.runtime import deploy
from policies.runtime.deploy import DeployConfig, run
from policies.runtime.loop import PolicyStalled
from policies.runtime.recorder import SIDECAR
from policies.runtime.sim_robot import RemoteSimRobot, SimRobot
from policies.seeds import HELDOUT
from policies.serving.client import API_KEY_ENV
from vla.data import cli
from vla.data.meta import load_meta

ROOT = Path(__file__).resolve().parents[1]
# The expert needs 17, 21, 15 and 21 steps on PushToTarget's first held-out seeds: a 17-step budget makes
# episodes of both outcomes, so matching vla-eval is not just "everything succeeds".
TASK, EPISODES, BUDGET = "PushToTarget", 4, 17


def outcomes(document: dict) -> list[tuple[bool, int]]:
    return [(e["success"], e["steps"]) for e in document["episodes"]]


@pytest.fixture(scope="module")
def expected() -> list[tuple[bool, int]]:
    """vla-eval's outcome (success, length) of each episode."""
    evaluated = evaluate("expert", [TASK], EPISODES, env_options={"max_steps": BUDGET}, progress=False)
    outcome = [(e["success"], e["length"]) for e in evaluated["tasks"][TASK]["episode_results"]]
    assert {success for success, _ in outcome} == {True, False}
    return outcome


def test_sync_deployment_over_the_wire_matches_vla_eval_episode_by_episode(tmp_path, expected):
    options = dict(policy="expert", task=TASK, episodes_per_task=EPISODES, max_steps=BUDGET, rate_hz=200)
    sync = run(DeployConfig(**options, remote=True, async_inference=False, out=str(tmp_path / "sync")))
    assert outcomes(sync) == expected
    assert [e["seed"] for e in sync["episodes"]] == list(range(HELDOUT.start, HELDOUT.start + EPISODES))
    assert sync["successes"] == sum(s for s, _ in expected) and sync["interventions"] == {}
    # Asynchronous: the expert answers in well under a period, so each chunk lands before its tick and the
    # episodes are the same; a late answer would show as holds or drops (and may change an episode).
    late = run(DeployConfig(**options, out=str(tmp_path / "async")))
    if late["timing"]["holds"] == 0 and late["timing"]["dropped"] == 0:
        assert outcomes(late) == expected
    report = json.loads((tmp_path / "sync" / "report.json").read_text())
    assert report["ci95"][0] < report["success_rate"] < report["ci95"][1]
    assert (tmp_path / "sync" / "timing.png").stat().st_size > 10_000
    rows = (tmp_path / "sync" / "timing.csv").read_text().splitlines()
    assert len(rows) == 1 + sum(steps for _, steps in expected)


def test_a_policy_served_by_vla_serve_drives_the_remote_robot_like_vla_eval(tmp_path, expected):
    """The whole stack over two wires: the scripted expert behind vla-serve, the simulator in its own process."""
    from policies.expert_policy import ExpertPolicy
    from policies.serving.server import PolicyServer, ServerThread

    with ServerThread(PolicyServer(ExpertPolicy, port=0, kind="expert")) as server:
        options = dict(task=TASK, episodes_per_task=EPISODES, max_steps=BUDGET, rate_hz=200, remote=True)
        served = run(
            DeployConfig(
                server=f"127.0.0.1:{server.port}", **options, async_inference=False, out=str(tmp_path)
            )
        )
    assert outcomes(served) == expected


def test_recording_a_deployment_gives_a_valid_dataset_with_its_interventions(tmp_path):
    dataset = tmp_path / "deployments"
    options = dict(policy="expert", task="PressButton", episodes_per_task=2, rate_hz=50, record=str(dataset))
    document = run(DeployConfig(**options, safety={"max_translation": 0.03}, out=str(tmp_path / "report")))
    assert cli.main(["validate", str(dataset)]) == 0
    meta = load_meta(dataset)
    assert meta.total_episodes == 2 and meta.fps == 50 and meta.camera_keys
    for entry, row in zip(document["episodes"], meta.episodes, strict=True):
        assert row["length"] == entry["ticks"] and row["vla/seed"] == entry["seed"]
        assert row["vla/success"] == int(entry["success"])
        sidecar = json.loads((dataset / SIDECAR.format(index=row["episode_index"])).read_text())
        assert len(sidecar["interventions"]) == row["length"]
        assert sidecar["counts"] == entry["interventions"] and sidecar["counts"]["translation_cap"] > 0
        assert row["vla/interventions"] == sum(sidecar["counts"].values())
    from vla.data.table import load_table

    actions = load_table(meta).action  # the executed actions: after the safety layer's 3 cm cap
    assert np.linalg.norm(actions[:, :3], axis=1).max() * 0.05 <= 0.03 + 1e-6
    # a second run appends to the same dataset
    run(DeployConfig(**options, seed=HELDOUT.start + 2, out=str(tmp_path / "again")))
    assert load_meta(dataset).total_episodes == 4 and cli.main(["validate", str(dataset)]) == 0


def test_dry_run_sends_nothing_and_counts_what_it_would_have_done(tmp_path):
    document = run(
        DeployConfig(
            policy="expert",
            task="PressButton",
            rate_hz=200,
            max_steps=20,
            safety={"dry_run": True},
            out=str(tmp_path),
        )
    )
    episode = document["episodes"][0]
    assert episode["steps"] == 0 and episode["ticks"] == 20 and episode["success"] is False
    rows = (tmp_path / "timing.csv").read_text().splitlines()[1:]
    assert all(row.split(",")[4] == "dry-act" for row in rows)


def test_sim_robot_predicts_its_joint_targets_and_holds_on_stop():
    robot = SimRobot("PickUp", cameras=())
    robot.reset(HELDOUT.start)
    world = robot._base.world
    action = np.array([0.5, -0.3, -1.0, 0.2, 0.0, 0.4, 1.0])
    predicted = robot.predict_joints(action)
    before = robot.state().copy()
    for _ in range(3):
        robot.predict_joints(-action)  # predicting moves nothing
    assert np.array_equal(robot.state(), before)
    robot.act(action)
    assert np.allclose(world.data.ctrl[world.arm_actuators], predicted)
    robot.stop()
    assert np.allclose(robot._base.controller.target_pos, world.tcp_pos)  # commands where it is
    assert np.allclose(world.data.ctrl[world.arm_actuators], world.arm_qpos)
    with pytest.raises(ValueError, match="must lie in \\[-1, 1\\]"):
        robot.act(np.full(7, 2.0))
    robot.close()


def test_remote_sim_robot_answers_over_the_wire_and_reports_errors():
    robot = RemoteSimRobot("PressButton", cameras=("wrist",), image_size=(32, 32))
    try:
        robot.reset(HELDOUT.start)
        obs = robot.observe()
        assert obs["images"]["wrist"].shape == (32, 32, 3) and obs["state"].shape == (17,)
        assert robot.instruction and not robot.done and robot.limits.joint_margin == 0.0
        robot.act(np.zeros(7))
        assert robot.steps == 1
        with pytest.raises(RuntimeError, match="refused act: ValueError: action must have shape"):
            robot.act(np.zeros(3))
        assert robot.predict_joints(np.zeros(7)).shape == (7,)  # the process lived on
    finally:
        robot.close()
    assert not robot._process.is_alive()


# -- the vla-deploy app ------------------------------------------------------------------------------------
def _config(*overrides):
    import policies.runtime.deploy  # noqa: F401  (registers the config schema)

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose("deploy", overrides=list(overrides))


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigCompositionException, match="rate_hzz"):
        _config("policy=expert", "rate_hzz=3")
    with pytest.raises(ValueError, match="exactly one of checkpoint=DIR, policy=expert and server=host:port"):
        OmegaConf.to_object(_config())
    with pytest.raises(ValueError, match="server must be host:port"):
        OmegaConf.to_object(_config("server=localhost"))
    with pytest.raises(ValueError, match="a dry run executes nothing"):
        OmegaConf.to_object(_config("policy=expert", "record=x", "safety.dry_run=true"))
    with pytest.raises(ValueError, match=r"safety\.scale must be in"):
        OmegaConf.to_object(_config("policy=expert", "safety.scale=1.5"))
    with pytest.raises(ValueError, match="leave the heldout split"):
        OmegaConf.to_object(_config("policy=expert", "seed=5"))
    config = OmegaConf.to_object(_config("server=gpu-box:8000", "safety.max_translation=0.02"))
    assert config.safety.max_translation == 0.02 and config.async_inference and config.rate_hz == 10
    with pytest.raises(ValueError, match="looser than the robot's declared"):
        run(DeployConfig(policy="expert", task="PressButton", safety={"max_translation": 1.0}))


def test_vla_deploy_exits_non_zero_on_sigint_with_the_robot_stopped(tmp_path):
    command = [
        sys.executable,
        "-m",
        "policies.runtime.deploy",
        "policy=expert",
        "task=PlaceInBin",
        "episodes_per_task=5",
        "rate_hz=20",
        f"out={tmp_path}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if "policy warm-up" in line:
                break
        time.sleep(1.0)  # into the first episode (about 30 ticks of 50 ms)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
    out = "".join(lines) + out
    assert child.returncode == 130, out
    assert "e-stop: signal SIGINT" in out and "stopping the robot" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped"] == "e-stop: signal SIGINT" and len(report["episodes"]) < 5
    assert (tmp_path / "timing.csv").read_text().count("\n") > 1  # the interrupted episode's ticks too


def test_no_file_a_deploy_run_writes_holds_the_api_key(tmp_path, monkeypatch):
    """The key came back in clear in every report.json. It is now read from $VLA_SERVE_API_KEY when not
    given (so it stays out of the command line), and written nowhere: not in the report, the timing, the
    plot or a recorded dataset."""
    from policies.expert_policy import ExpertPolicy
    from policies.serving.server import PolicyServer, ServerThread

    key = "secret-" + "k" * 24
    options = dict(
        task="PressButton", max_steps=6, rate_hz=100, async_inference=False, record=str(tmp_path / "data")
    )
    with ServerThread(PolicyServer(ExpertPolicy, port=0, api_key=key, kind="expert")) as server:
        address = f"127.0.0.1:{server.port}"
        monkeypatch.setenv(API_KEY_ENV, key)
        from_env = run(DeployConfig(server=address, **options, out=str(tmp_path / "env")))
        monkeypatch.delenv(API_KEY_ENV)
        given = run(
            DeployConfig(
                server=address, api_key=key, **options, seed=HELDOUT.start + 1, out=str(tmp_path / "arg")
            )
        )
    assert from_env["episodes"][0]["steps"] == given["episodes"][0]["steps"] == 6
    assert from_env["config"]["api_key"] == "<hidden>"
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) > 10
    assert not [path for path in written if key.encode() in path.read_bytes()]


def test_a_watchdog_stop_reports_the_interrupted_episodes_interventions(tmp_path, monkeypatch):
    """A policy that answers twice, then stalls: the loop holds the robot at every tick (watchdog) until
    stall_timeout_s, then stops. report.md said "Safety interventions: none" after 50 holds, because the
    interrupted episode was left out of the counts; it is now in the report, marked stopped."""

    class Stalling:
        cameras, image_size, calls = (), None, 0

        def reset(self):
            pass

        def infer(self, obs):
            self.calls += 1
            if self.calls > 2:  # the warm-up and the episode's first chunk are answered, then nothing
                time.sleep(2.0)
            return {"actions": np.tile([0, 0, 0.2, 0, 0, 0, -1], (5, 1)).astype(np.float32)}

    monkeypatch.setattr(deploy, "make_policy", lambda config: Stalling())
    config = DeployConfig(
        policy="expert", task="PressButton", rate_hz=100, stall_timeout_s=0.3, out=str(tmp_path)
    )
    with pytest.raises(PolicyStalled):
        run(config)
    report = json.loads((tmp_path / "report.json").read_text())
    [episode] = report["episodes"]
    assert episode["stopped"] and episode["success"] is None and episode["steps"] == 5
    assert report["interventions"]["watchdog"] == episode["watchdog_holds"] >= 20
    markdown = (tmp_path / "report.md").read_text()
    assert f"watchdog: {episode['watchdog_holds']}" in markdown and "| stopped |" in markdown
