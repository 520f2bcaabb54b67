"""Closed-loop evaluation: chunk execution, the policies (VLA checkpoint, scripted expert), vla-eval (CPU)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_checkpoint
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import sim
from policies.chunking import RecedingHorizon, TemporalEnsemble, make_executor
from policies.evaluation.evaluate import evaluate
from policies.reports.video import read_mp4
from policies.rollout import run_episode
from policies.seeds import HELDOUT
from policies.vla_policy import VLAPolicy
from vla.model.vla import VLA

TASK = "PressButton"
D = 7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- chunk execution ----------------------------------------------------------------------------------------
def _chunk(query_step: int, k: int) -> np.ndarray:
    """(k, D): row i holds 100 * query_step + i, so an executed action says where it came from."""
    return np.repeat(100.0 * query_step + np.arange(k, dtype=np.float32)[:, None], D, axis=1)


def _drive(executor, steps: int, k: int) -> tuple[list[int], list[float]]:
    """Run ``executor`` for ``steps`` steps with a fake policy; return the query steps and executed values."""
    queries, executed = [], []
    executor.reset()
    for t in range(steps):
        if executor.needs_query():
            queries.append(t)
            executor.add_chunk(_chunk(t, k))
        executed.append(float(executor.next_action()[0]))
    return queries, executed


def test_receding_horizon_executes_the_first_n_actions_then_replans():
    queries, executed = _drive(RecedingHorizon(n_action_steps=3), steps=8, k=5)
    assert queries == [0, 3, 6]
    assert executed == [0, 1, 2, 300, 301, 302, 600, 601]


def test_receding_horizon_executes_a_short_chunk_whole():
    queries, executed = _drive(RecedingHorizon(n_action_steps=5), steps=5, k=2)
    assert queries == [0, 2, 4]
    assert executed == [0, 1, 200, 201, 400]


def test_temporal_ensemble_queries_every_step_and_weights_the_oldest_most():
    m = 0.5
    queries, executed = _drive(TemporalEnsemble(coeff=m), steps=5, k=3)
    assert queries == [0, 1, 2, 3, 4]
    weights = np.exp(-m * np.arange(3)) / np.exp(-m * np.arange(3)).sum()
    # Step 2 averages chunk@0[2], chunk@1[1], chunk@2[0], oldest first; step 4 no longer sees chunk@0 or @1.
    assert executed[0] == 0.0
    assert executed[2] == pytest.approx(weights @ np.array([2.0, 101.0, 200.0]))
    assert executed[4] == pytest.approx(weights @ np.array([202.0, 301.0, 400.0]))
    act = TemporalEnsemble().weights(4)  # ACT's m = 0.01
    assert act.sum() == pytest.approx(1.0) and np.all(np.diff(act) < 0)


def test_chunk_executors_refuse_misuse():
    with pytest.raises(ValueError, match="n_action_steps must be >= 1"):
        RecedingHorizon(0)
    with pytest.raises(ValueError, match=r"shape \(K, D\)"):
        RecedingHorizon(2).add_chunk(np.zeros(D))
    with pytest.raises(RuntimeError, match="add_chunk"):
        TemporalEnsemble().next_action()
    with pytest.raises(ValueError, match="chunking must be one of"):
        make_executor("average", 5)


class _CountingPolicy:
    """Zero-action chunks of K; counts queries and resets. No infer_batch: one environment only."""

    cameras = ()

    def __init__(self, k: int):
        self.k, self.queries, self.resets = k, 0, 0

    def reset(self):
        self.resets += 1

    def infer(self, obs):
        self.queries += 1
        return {"actions": np.zeros((self.k, D), np.float32)}


def test_the_evaluator_replans_every_n_action_steps_and_resets_per_episode():
    policy = _CountingPolicy(k=4)
    document = evaluate(policy, [TASK], 2, n_action_steps=3, env_options={"max_steps": 10}, progress=False)
    assert [e["length"] for e in document["tasks"][TASK]["episode_results"]] == [10, 10]
    assert policy.queries == 2 * 4  # steps 0, 3, 6, 9 of each episode
    assert policy.resets == 2
    with pytest.raises(ValueError, match="no infer_batch"):
        evaluate(policy, [TASK], 2, num_envs=2, progress=False)


# -- the scripted expert through the evaluator --------------------------------------------------------------
def _episodes(document: dict, task: str) -> list[tuple]:
    return [(e["seed"], e["success"], e["length"]) for e in document["tasks"][task]["episode_results"]]


def test_expert_evaluation_is_deterministic_and_independent_of_num_envs(tmp_path):
    options = {"render_size": (64, 64)}
    runs = [
        evaluate("expert", ["PickUp"], 6, num_envs=n, expert_noise=0.3, env_options=options, out=out)
        for n, out in ((1, tmp_path / "a"), (1, None), (2, tmp_path / "b"))
    ]
    without_video = [{k: v for k, v in run["tasks"]["PickUp"].items() if k != "video"} for run in runs]
    assert without_video[0] == without_video[1] == without_video[2]  # twice, and with two environments
    # The same episodes as the expert run directly (vla-sim-report's loop): one code path, same results.
    env = sim.make("PickUp", cameras=())
    seeds = range(HELDOUT.start, HELDOUT.start + 6)  # the default split's first six
    direct = [run_episode(env, sim.make_expert(env, noise=0.3, seed=s), s) for s in seeds]
    env.close()
    assert _episodes(runs[0], "PickUp") == [(r.seed, r.success, r.length) for r in direct]
    # Noise 0.3 fails some grasps (the last two of these six): the video holds the first episode, then the
    # first of the other outcome.
    outcomes = [r.success for r in direct]
    assert len(set(outcomes)) == 2
    other = next(r for r in direct if r.success != outcomes[0])
    hold = round(0.7 * 10)
    for out in (tmp_path / "a", tmp_path / "b"):
        video = read_mp4(out / "videos" / "PickUp.mp4")
        assert video.shape[1:] == (64, 64, 3)
        assert len(video) == (direct[0].length + 1 + hold) + (other.length + 1 + hold)


def test_the_expert_runs_behind_the_frame_codec_unchanged():
    """frame_codec wraps the policy; the scripted expert reads privileged actions, not pixels, so its
    episodes are the same with and without the H.264 round trip (the wrapper must not hide the expert)."""
    options = {"max_steps": 20}
    runs = [
        evaluate("expert", ["PressButton"], 1, frame_codec=codec, env_options=options, progress=False)
        for codec in ("none", "libx264")
    ]
    assert _episodes(runs[0], "PressButton") == _episodes(runs[1], "PressButton")
    assert runs[1]["protocol"]["frame_codec"] == "libx264"


# -- a VLA checkpoint -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def observation():
    env = sim.make(TASK, image_size=(64, 64))  # not the model's 32x32: the policy resizes
    obs, _ = env.reset(seed=0)
    env.close()
    return obs


def test_vla_policy_returns_chunks_in_range_from_resized_images(checkpoint, observation):
    policy = VLAPolicy(checkpoint)
    assert policy.cameras == ("agentview", "wrist")
    assert policy.batch([observation])["images"]["wrist"].shape == (1, 3, 32, 32)
    actions = policy.infer(observation)["actions"]
    assert actions.shape == (4, D) and actions.dtype == np.float32
    assert np.abs(actions).max() <= 1.0
    batched = policy.infer_batch([observation, observation])
    assert len(batched) == 2 and np.array_equal(batched[0]["actions"], batched[1]["actions"])


def test_camera_mapping_errors_name_the_camera(checkpoint, observation):
    with pytest.raises(ValueError, match=r"\['front'\].*its cameras are \['agentview', 'wrist'\]"):
        VLAPolicy(checkpoint, camera_map={"front": "agentview"})
    only_agentview = {**observation, "images": {"agentview": observation["images"]["agentview"]}}
    with pytest.raises(ValueError, match=r"lacks camera 'wrist' \(it has \['agentview'\]\)"):
        VLAPolicy(checkpoint).infer(only_agentview)
    # Mapped: both slots read the one camera there is.
    policy = VLAPolicy(checkpoint, camera_map={"wrist": "agentview"})
    assert policy.infer(only_agentview)["actions"].shape == (4, D)
    env = sim.make(TASK, cameras=("agentview",), image_size=(32, 32))
    policy.check_compatible(env)
    with pytest.raises(ValueError, match=r"slot 'wrist' reads observation camera 'wrist'.*\['agentview'\]"):
        VLAPolicy(checkpoint).check_compatible(env)
    env.close()


def test_a_mismatched_checkpoint_fails_before_the_first_step(tmp_path, monkeypatch):
    steps = []
    step = sim.TabletopEnv.step
    monkeypatch.setattr(sim.TabletopEnv, "step", lambda self, a: steps.append(a) or step(self, a))
    wrong = tiny_checkpoint(tmp_path / "wrong", state_dim=16, action_dim=6)
    with pytest.raises(
        ValueError, match=r"action dimension: .* predicts 6.*state size: .* reads 16"
    ) as error:
        evaluate(wrong, [TASK], 1, progress=False)
    assert str(wrong) in str(error.value)
    assert steps == []


def test_vla_checkpoint_evaluation_same_results_with_one_or_two_envs(checkpoint, tmp_path):
    runs = {
        n: evaluate(
            checkpoint,
            [TASK],
            2,
            seed=HELDOUT.start + 7,
            num_envs=n,
            n_action_steps=2,
            env_options={"max_steps": 8, "render_size": (32, 32)},
            out=tmp_path / str(n),
            progress=False,
        )
        for n in (1, 2)
    }
    for document in runs.values():
        entry = document["tasks"][TASK]
        assert entry["episodes"] == 2 and 0 <= entry["success_rate"] <= 1 and entry["mean_length"] > 0
        assert document["mean_success"] == entry["success_rate"]
        protocol = document["protocol"]
        assert (
            protocol["checkpoint"] == str(checkpoint.resolve()) and len(protocol["checkpoint_sha256"]) == 64
        )
        assert protocol["seeds"] == [HELDOUT.start + 7, HELDOUT.start + 8] and protocol["max_steps"] == {
            TASK: 8
        }
        assert protocol["image_size"] == [32, 32] and protocol["model"]["chunk_size"] == 4
        assert protocol["model"]["decoding"] == "autoregressive"  # the checkpoint's, reported
        assert (protocol["chunking"], protocol["n_action_steps"]) == ("receding", 2)
        assert protocol["precision"] == "fp32"  # the float type it computed in, reported
        assert {"shadows", "reflections", "multisample"} <= set(protocol["render"])
        assert {"torch", "mujoco", "gymnasium", "numpy"} <= set(protocol["versions"])
    assert runs[1]["tasks"][TASK]["episode_results"] == runs[2]["tasks"][TASK]["episode_results"]
    assert runs[1]["protocol"]["num_envs"] == 1 and runs[2]["protocol"]["num_envs"] == 2


def test_vla_evaluation_with_temporal_ensembling_repeats_exactly(checkpoint):
    # The second run evaluates the model in memory (the trainer's periodic evaluation), not the directory.
    options = {"max_steps": 6}
    runs = [
        evaluate(
            model, [TASK], 1, seed=HELDOUT.start + 3, chunking="ensemble", env_options=options, progress=False
        )
        for model in (checkpoint, VLA.load(checkpoint))
    ]
    assert runs[0]["tasks"] == runs[1]["tasks"]
    assert runs[0]["protocol"]["chunking"] == "ensemble" and runs[0]["protocol"]["ensemble_coeff"] == 0.01
    assert runs[1]["protocol"]["checkpoint"] is None and runs[1]["protocol"]["model"]["chunk_size"] == 4


def test_a_checkpoint_reads_a_blank_instruction_only_while_blank_is_evaluated(checkpoint, observation):
    policy = VLAPolicy(checkpoint)
    options = {"max_steps": 3, "image_size": (32, 32)}
    document = evaluate(policy, [TASK], 1, instruction="blank", env_options=options, progress=False)
    episode = document["instruction_modes"]["blank"]["tasks"][TASK]["episode_results"][0]
    assert episode["policy_instruction"] == "" and episode["length"] == 3
    assert document["protocol"]["instruction"]["chance"] == {TASK: pytest.approx(1 / 3)}
    with pytest.raises(ValueError, match="must be a non-empty string"):  # the server's clients: refused again
        policy.infer({**observation, "instruction": ""})


# -- the vla-eval app -----------------------------------------------------------------------------------------
def _config(*overrides):
    import policies.evaluation.evaluate  # noqa: F401  (registers the config schema)

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose("eval", overrides=list(overrides))


def test_config_errors():
    with pytest.raises(ConfigCompositionException, match="episodes_per_tsak"):
        _config("policy=expert", "episodes_per_tsak=3")
    with pytest.raises(ValueError, match="exactly one of checkpoint=DIR and policy=expert"):
        OmegaConf.to_object(_config())
    with pytest.raises(ValueError, match="chunking must be one of"):
        OmegaConf.to_object(_config("policy=expert", "chunking=mean"))
    with pytest.raises(ValueError, match="precision must be one of"):
        OmegaConf.to_object(_config("policy=expert", "precision=fp16"))
    for override in ("num_envs=0", "n_action_steps=0", "max_steps=0"):  # refused before any environment
        with pytest.raises(ValueError, match=override.split("=")[0] + " must be >= 1"):
            OmegaConf.to_object(_config("policy=expert", override))
    config = OmegaConf.to_object(_config("checkpoint=x", "camera_map={wrist:agentview}", "task=[PickUp]"))
    assert config.camera_map == {"wrist": "agentview"} and config.task == ["PickUp"]
    assert config.episodes_per_task is None  # evaluate() runs the protocol's 50 (10 on Meta-World)


def test_vla_eval_app_writes_the_report(tmp_path):
    command = [
        sys.executable,
        "-m",
        "policies.evaluation.evaluate",
        "policy=expert",
        f"task=[{TASK}]",
        "episodes_per_task=2",
        "render_size=[64,64]",
        f"out={tmp_path}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"| {TASK} | 100% [34%-100%] (2/2) |" in done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    entry = results["tasks"][TASK]
    assert entry["success_rate"] == 1.0 and entry["episodes"] == 2 and entry["mean_length"] > 0
    assert [e["seed"] for e in entry["episode_results"]] == [HELDOUT.start, HELDOUT.start + 1]
    assert results["mean_success"] == 1.0
    assert results["protocol"]["policy"] == "ExpertPolicy" and results["protocol"]["checkpoint"] is None
    assert results["timing"]["env_steps"] == 2 * entry["mean_length"]
    assert f"| {TASK} |" in (tmp_path / "report.md").read_text()
    assert read_mp4(tmp_path / entry["video"]).shape[1:] == (64, 64, 3)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert events.Scalars(f"eval/success/{TASK}")[0].value == 1.0
    assert events.Scalars("eval/mean_success")[0].value == 1.0


def test_seed_splits_are_checked_and_named_in_the_results():
    with pytest.raises(ValueError, match="leave the heldout split"):
        OmegaConf.to_object(_config("policy=expert", "seed=100000"))
    with pytest.raises(ValueError, match="split must be one of"):
        OmegaConf.to_object(_config("policy=expert", "split=test"))
    config = OmegaConf.to_object(_config("policy=expert", "split=tune", "episodes_per_task=3"))
    assert (config.split, config.seed) == ("tune", None)
    document = evaluate("expert", [TASK], 1, split="tune", env_options={"max_steps": 3}, progress=False)
    protocol = document["protocol"]
    assert protocol["split"] == "tune" and protocol["seeds"] == [100_000]
    assert protocol["split_range"] == [100_000, 199_999]
    low, high = document["tasks"][TASK]["ci95"]
    assert 0 <= low <= document["tasks"][TASK]["success_rate"] <= high <= 1


# -- Meta-World: the options it cannot honour, and Meta-World missing (tests/test_metaworld.py runs it) -------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["instruction=swap"], "not available on Meta-World: each task has one instruction"),
        (["instruction=[normal,blank]"], "not available on Meta-World"),
        (["cameras=[agentview]"], r"one camera: cameras must be \[corner2\]"),
        (["camera_map={corner2:wrist}"], "Meta-World renders only corner2"),
        (["camera_jitter=0.01"], "our simulator's randomizations"),
        (["max_steps=600"], "max_steps must be <= 500"),
        (
            ["task=[metaworld/reach-v3,PickUp]"],
            r"cannot evaluate Meta-World \['metaworld/reach-v3'\] and our tasks \['PickUp'\]",
        ),
    ],
)
def test_metaworld_options_it_cannot_honour_are_refused_with_the_reason(overrides, message):
    task = [] if any(o.startswith("task=") for o in overrides) else ["task=metaworld/reach-v3"]
    with pytest.raises(ValueError, match=message):
        OmegaConf.to_object(_config("policy=expert", *task, *overrides))


def test_metaworld_bucket_means_and_the_mean_of_the_buckets_present():
    from policies.suites.metaworld import markdown, summary

    def entry(successes):
        return {"success_rate": successes / 4, "successes": successes, "episodes": 4}

    tasks = {"metaworld/reach-v3": entry(4), "metaworld/door-open-v3": entry(2)}
    section = summary({**tasks, "metaworld/push-v3": entry(1)})
    assert section["mean_over_tasks"]["success_rate"] == pytest.approx(7 / 12)  # what lerobot-eval pools
    assert (section["mean_over_tasks"]["successes"], section["mean_over_tasks"]["episodes"]) == (7, 12)
    assert list(section["buckets"]) == ["easy", "hard"]
    easy, hard = section["buckets"]["easy"], section["buckets"]["hard"]
    assert (easy["success_rate"], easy["tasks"]) == (0.75, 2)
    assert (hard["success_rate"], hard["bucket_tasks"]) == (0.25, 6)
    assert section["mean_over_buckets"] == {"success_rate": 0.5, "buckets": ["easy", "hard"]}  # papers'
    table = markdown({"metaworld": section})
    assert "| hard | 1/6 | 25% [5%-70%] (1/4) |" in table
    assert "| mean over buckets | 2 buckets | 50% |" in table


def test_vla_eval_on_metaworld_without_it_says_how_to_install_it(tmp_path, monkeypatch):
    installed = importlib.util.find_spec("metaworld") is not None
    monkeypatch.setitem(sys.modules, "metaworld", None)  # makes `import metaworld` raise ImportError
    with pytest.raises(ImportError, match="make metaworld"):
        evaluate("expert", "metaworld/reach-v3", 1, progress=False)
    if installed:
        return  # the command line below needs a Python without Meta-World
    command = [sys.executable, "-m", "policies.evaluation.evaluate", "policy=expert", "task=metaworld/mt10"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "make metaworld" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
