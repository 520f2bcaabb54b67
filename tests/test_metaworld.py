"""sim.metaworld: Meta-World v3 behind our observation contract, and its scripted experts through it.

Runs only where Meta-World is installed (``make test-metaworld``, in .venv-metaworld); elsewhere it skips.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("metaworld")

from sim import metaworld as mw

pytestmark = [
    pytest.mark.metaworld,
    # Meta-World's policies warn on every call that their gains may exceed the action range (we clip).
    pytest.mark.filterwarnings("ignore:Constant:UserWarning"),
]

SIZE = (96, 128)  # not square, so a transposed image would have the wrong shape


@pytest.fixture(scope="module")
def env():
    env = mw.make("metaworld/drawer-open-v3", image_size=SIZE)
    yield env
    env.close()


def run_expert(env, seed: int, steps: int = mw.MAX_STEPS) -> tuple[bool, list[np.ndarray]]:
    """(success, the states seen) of the expert's episode on ``seed``, for at most ``steps`` steps."""
    expert = mw.metaworld_expert(env)
    obs, _ = env.reset(seed=seed)
    expert.reset()
    states = [obs["state"]]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(expert.infer(obs)["actions"][0])
        states.append(obs["state"])
        if terminated or truncated:
            return terminated, states
    return False, states


def test_observation_follows_the_contract(env):
    obs, info = env.reset(seed=0)
    assert info["success"] is False and 0 <= info["train_task"] < 50
    # What policies.rollout reads, as sim's envs give it; the task by the id make() takes.
    assert (
        info["task"] == "metaworld/drawer-open-v3"
        and info["instruction"] == mw.INSTRUCTIONS["drawer-open-v3"]
    )
    assert 1.0 / env._env.dt == mw.CONTROL_HZ == 80  # frame_skip 5 x 2.5 ms: a recording's fps
    assert set(obs) == {"images", "state", "instruction"}
    assert set(obs["images"]) == {"corner2"}
    image = obs["images"]["corner2"]
    assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
    assert image.std() > 5, "the image is blank"
    assert obs["state"].shape == (4,) and obs["state"].dtype == np.float32
    assert obs["instruction"] == mw.INSTRUCTIONS["drawer-open-v3"]
    assert env.observation_space.contains(obs)
    # The state is the first four entries of Meta-World's own observation: hand position, gripper opening.
    np.testing.assert_array_equal(obs["state"], env.privileged_obs[:4].astype(np.float32))
    np.testing.assert_allclose(obs["state"][:3], env._env.data.body("hand").xpos, atol=1e-6)
    obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert isinstance(reward, float) and terminated is False and truncated is False
    assert (
        info["task"] == "metaworld/drawer-open-v3" and "near_object" in info
    )  # Meta-World's own entries too
    assert set(obs) == {"images", "state", "instruction"}


def test_corner2_is_moved_and_flipped_both_ways(env):
    obs, _ = env.reset(seed=3)
    model = env._env.model
    np.testing.assert_allclose(model.cam_pos[model.camera("corner2").id], mw.CAMERA_POS)
    assert model.vis.quality.shadowsize == 0 and model.vis.quality.offsamples == 0
    raw = env._env.render()  # the same state rendered again, as Meta-World returns it
    np.testing.assert_array_equal(obs["images"]["corner2"], raw[::-1, ::-1])
    assert not np.array_equal(obs["images"]["corner2"], raw), "the flip changed nothing"


def test_a_seed_replays_its_episode_and_seeds_vary_the_scene(env):
    first = run_expert(env, seed=5, steps=30)[1]
    env.reset(seed=6)  # another episode in between must not leak into the replay
    image_after_reset = env.reset(seed=5)[0]["images"]["corner2"]
    again = run_expert(env, seed=5, steps=30)[1]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    np.testing.assert_array_equal(image_after_reset, env.reset(seed=5)[0]["images"]["corner2"])

    # Object and goal positions come from one of MT1's 50 train tasks, drawn by the seed.
    scenes = set()
    for seed in range(8):
        env.reset(seed=seed)
        scenes.add(tuple(np.round(env.privileged_obs[4:7], 4)))  # the drawer handle's position
    assert len(scenes) >= 4, f"8 seeds gave only {len(scenes)} distinct scenes"


@pytest.mark.parametrize("task", ["reach-v3", "button-press-topdown-v3", "drawer-open-v3"])
def test_the_expert_solves_easy_tasks_through_the_adapter(task):
    env = mw.make(f"metaworld/{task}", render_images=False)
    try:
        results = [run_expert(env, seed) for seed in (200_000, 200_001, 200_002)]
    finally:
        env.close()
    for success, states in results:
        assert success, f"{task}: the expert failed"
        assert len(states) - 1 < mw.MAX_STEPS
    actions = mw.metaworld_expert(env).infer({})["actions"]
    assert actions.shape == (1, 4) and actions.dtype == np.float32 and np.abs(actions).max() <= 1.0


def test_episode_is_truncated_at_500_steps_without_success():
    env = mw.make("metaworld/drawer-open-v3", render_images=False)
    try:
        env.reset(seed=0)
        steps, truncated = 0, False
        while not truncated and steps <= mw.MAX_STEPS:
            _, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
            steps += 1
            assert not terminated and info["success"] is False
        assert steps == mw.MAX_STEPS and truncated
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(4, np.float32))
    finally:
        env.close()


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        (np.zeros(7, np.float32), "shape"),
        (np.zeros((1, 4), np.float32), "one row at a time"),
        (np.array([0, 0, 0, 1.5], np.float32), r"\['gripper'\] outside"),
        (np.array([np.nan, 0, 0, 0]), r"NaN or inf in \['dx'\]"),
        (np.zeros(4, np.int64), "floating-point"),
    ],
)
def test_bad_actions_are_refused_with_the_reason(env, action, problem):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=problem):
        env.step(action)


def test_ids_resolve_to_tasks_and_unknown_names_list_the_valid_ones():
    assert mw.resolve("metaworld/reach-v3") == ["reach-v3"]
    assert len(mw.resolve("metaworld/mt50")) == 50 and len(mw.resolve("metaworld/mt10")) == 10
    buckets = [task for bucket in mw.BUCKETS for task in mw.resolve(f"metaworld/{bucket}")]
    assert sorted(buckets) == sorted(mw.TASKS), "the buckets must split MT50 exactly"
    import metaworld

    assert sorted(mw.TASKS) == sorted(metaworld.MT1.ENV_NAMES)
    assert set(mw.GROUPS["mt10"]) == set(metaworld.MT10().train_classes)
    with pytest.raises(ValueError, match=r"valid names: .*metaworld/mt10.*metaworld/reach-v3"):
        mw.resolve("metaworld/reach-v9")
    with pytest.raises(ValueError, match="valid names"):
        mw.make("metaworld/nope")
    with pytest.raises(ValueError, match="is a group"):
        mw.make("metaworld/easy")


def test_missing_metaworld_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # makes `import metaworld` raise ImportError
    with pytest.raises(ImportError, match="make metaworld"):
        mw.make("metaworld/reach-v3")


def test_describe_records_the_protocol(env):
    protocol = env.describe()
    assert protocol["camera"] == "corner2" and protocol["camera_pos"] == list(mw.CAMERA_POS)
    assert protocol["shadows"] is False and protocol["multisampling"] is False
    assert protocol["max_steps"] == 500 and protocol["image_size"] == list(SIZE)
    assert protocol["task"] == "drawer-open-v3"


# -- vla-record ----------------------------------------------------------------------------------------------
def test_vla_record_writes_the_experts_episodes_as_a_valid_dataset_and_tops_it_up(tmp_path):
    from policies.recording.app import RecordConfig, record
    from vla.data.checks import validate
    from vla.data.meta import load_meta

    out, tasks = tmp_path / "mw", ["metaworld/reach-v3", "metaworld/drawer-close-v3"]
    options = {"out": str(out), "image_size": [32, 32], "workers": 1}
    assert record(RecordConfig(task=tasks, episodes_per_task=2, **options)) == dict.fromkeys(tasks, 2)
    meta = load_meta(out)
    assert validate(meta) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["fps"] == 80 and info["robot_type"] == "metaworld_sawyer"
    assert meta.camera_keys == ["observation.images.corner2"]
    assert info["features"]["observation.images.corner2"]["shape"] == [32, 32, 3]
    assert (
        info["features"]["observation.state"]["names"]
        == list(mw.STATE_NAMES)
        == ["ee_x", "ee_y", "ee_z", "gripper_opening"]
    )
    assert info["features"]["action"]["names"] == list(mw.ACTION_NAMES) == ["dx", "dy", "dz", "gripper"]
    rows = meta.episodes
    assert [row["vla/sim_task"] for row in rows] == [tasks[0], tasks[1], tasks[0], tasks[1]]
    for row in rows:
        assert row["tasks"] == [mw.INSTRUCTIONS[row["vla/sim_task"].removeprefix("metaworld/")]]
        assert row["vla/success"] == 1 and row["length"] < mw.MAX_STEPS
    assert json.loads((out / "meta" / "recording.json").read_text())["settings"]["cameras"] == ["corner2"]

    # A top-up finds each task's progress by its id and adds exactly the missing episode, on a new seed.
    assert record(RecordConfig(task=tasks[0], episodes_per_task=3, **options)) == {tasks[0]: 1}
    rows = load_meta(out).episodes
    assert len(rows) == 5 and rows[-1]["vla/sim_task"] == tasks[0]
    assert [row["vla/seed"] for row in rows if row["vla/sim_task"] == tasks[0]] == [0, 1, 2]
    assert validate(load_meta(out)) == []


def test_vla_record_with_noise_executes_noisy_actions_and_records_the_intended_ones(tmp_path):
    """DART, as for sim's experts: executed = clip(intended + N(0, noise)) on dx, dy, dz, seeded by the
    episode seed; the dataset holds the intended actions and the states the noisy ones led to."""
    from policies.recording.app import RecordConfig, record
    from sim.contract import LABEL_ACTIONS
    from vla.data.meta import load_meta
    from vla.data.table import load_table

    out, noise = tmp_path / "noisy", 0.3
    record(
        RecordConfig(
            task="metaworld/reach-v3",
            episodes_per_task=1,
            noise=noise,
            keep="all",
            out=str(out),
            image_size=[32, 32],
        )
    )
    meta = load_meta(out)
    table, seed = load_table(meta), meta.episodes[0]["vla/seed"]

    # Replay the episode without images (they never touch the physics), asking the expert as the recorder did.
    env = mw.make("metaworld/reach-v3", render_images=False)
    clean_policy = mw.metaworld_expert(env).policy
    expert = mw.metaworld_expert(env, noise=noise, seed=seed)
    obs, _ = env.reset(seed=seed)
    states, intended, executed, clean = [], [], [], []
    done = False
    while not done:
        output = expert.infer(obs)
        states.append(obs["state"])
        clean.append(np.clip(clean_policy.get_action(env.privileged_obs), -1, 1))
        intended.append(output[LABEL_ACTIONS][0])
        executed.append(output["actions"][0])
        obs, _, terminated, truncated, _ = env.step(output["actions"][0])
        done = terminated or truncated
    env.close()
    intended, executed = np.stack(intended), np.stack(executed)

    np.testing.assert_array_equal(table.state, np.stack(states))
    np.testing.assert_array_equal(table.action, intended)
    np.testing.assert_allclose(
        intended, np.stack(clean), atol=1e-6
    )  # the labels are the expert's own actions
    draws = np.random.default_rng(seed).normal(0.0, noise, (len(executed), 3))
    np.testing.assert_allclose(executed[:, :3], np.clip(intended[:, :3] + draws, -1, 1), atol=1e-6)
    np.testing.assert_array_equal(executed[:, 3], intended[:, 3])  # the gripper is never noised
    assert np.abs(executed - intended).max() > 0.1


# -- vla-eval ------------------------------------------------------------------------------------------------
EASY = ["metaworld/reach-v3", "metaworld/button-press-topdown-v3"]


def test_vla_eval_of_the_experts_gives_per_task_and_bucket_means(tmp_path):
    from policies import suites
    from policies.evaluation.evaluate import EvalConfig, run

    default = EvalConfig(policy="expert", task="metaworld/easy")  # None until evaluate(): the protocol's
    assert suites.of(default.task).episodes(default.episodes_per_task) == 10  # LeRobot's protocol
    config = EvalConfig(
        policy="expert", task=EASY, episodes_per_task=2, videos=False, tensorboard=False, out=str(tmp_path)
    )
    run(config)
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["tasks"]) == EASY
    for entry in results["tasks"].values():
        assert entry["successes"] == entry["episodes"] == 2 and entry["mean_length"] < mw.MAX_STEPS
        assert [e["seed"] for e in entry["episode_results"]] == [200_000, 200_001]  # held-out by default
    section, mean = results["metaworld"], results["metaworld"]["mean_over_tasks"]
    assert (mean["success_rate"], mean["successes"], mean["episodes"], mean["tasks"]) == (1.0, 4, 4, 2)
    assert results["mean_success"] == 1.0
    easy = section["buckets"]["easy"]
    assert list(section["buckets"]) == ["easy"] and (easy["tasks"], easy["bucket_tasks"]) == (2, 28)
    assert (easy["successes"], easy["episodes"], easy["success_rate"]) == (4, 4, 1.0)
    assert section["mean_over_buckets"] == {"success_rate": 1.0, "buckets": ["easy"]}
    protocol = results["protocol"]
    assert protocol["cameras"] == [] and protocol["metaworld"]["render_images"] is False  # the expert: none
    assert protocol["max_steps"] == dict.fromkeys(EASY, 500)
    described = protocol["metaworld"]
    assert (described["camera"], described["mt1_seed"], described["max_steps"]) == ("corner2", 42, 500)
    assert described["shadows"] is False and "rows and columns" in described["image_flip"]
    assert described["instructions"][EASY[0]] == mw.INSTRUCTIONS["reach-v3"]
    report = (tmp_path / "report.md").read_text()
    assert "| easy | 2/28 | 100% [51%-100%] (4/4) |" in report and "mean over buckets" in report


def test_a_vla_trains_on_a_metaworld_recording_and_is_evaluated_on_metaworld(tmp_path):
    """4-D state and actions, one camera: record 2 expert episodes, train 3 steps, evaluate 1 short episode."""
    import torch
    from toy_vla import small_model

    from policies.evaluation.evaluate import evaluate
    from policies.recording.app import RecordConfig, record
    from vla.train.config import TrainConfig
    from vla.train.loop import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model on a busy 2-core machine: more threads only wait on each other
    try:
        data, run_dir = tmp_path / "mw", tmp_path / "run"
        record(RecordConfig(task=EASY[0], episodes_per_task=2, image_size=[32, 32], workers=1, out=str(data)))
        model = small_model(cameras=["corner2"])
        options = {"steps": 3, "batch_size": 4, "warmup_steps": 0, "val_fraction": 0.0, "val_every": 0}
        result = train(TrainConfig(model=model, dataset=str(data), out=str(run_dir), **options))
        assert result.step == 3
        document = evaluate(
            run_dir, EASY[0], 1, env_options={"max_steps": 12}, out=tmp_path / "eval", progress=False
        )
    finally:
        torch.set_num_threads(threads)
    protocol = document["protocol"]
    assert protocol["model"]["cameras"] == ["corner2"]
    assert protocol["image_size"] == [32, 32]  # the recording's size, which the checkpoint names
    assert protocol["cameras"] == ["corner2"] and protocol["max_steps"] == {EASY[0]: 12}
    entry = document["tasks"][EASY[0]]
    assert entry["episodes"] == 1 and entry["episode_results"][0]["length"] <= 12
    assert (tmp_path / "eval" / entry["video"]).stat().st_size > 0
    assert document["metaworld"]["buckets"]["easy"]["episodes"] == 1


# -- vla-demo ------------------------------------------------------------------------------------------------
def test_vla_demo_records_trains_and_evaluates_metaworld_end_to_end(tmp_path):
    """vla-demo on a Meta-World task: corner2 recorded at the model's size, 3 training steps, Meta-World's
    evaluation (1 short episode) with its metaworld section in results.json and the report."""
    import torch
    from toy_vla import small_model

    from policies.apps.demo import DemoConfig, demo_eval, demo_record, demo_train, run_demo

    model = small_model(chunk_size=1)  # cameras left at our default: the demo sets Meta-World's corner2
    config = DemoConfig(
        out=str(tmp_path / "demo"), task=[EASY[0]], torch_threads=1,
        record=demo_record(episodes_per_task=2, noise=0.1, workers=1),
        train=demo_train(steps=3, batch_size=4, warmup_steps=0, model=model),
        eval=demo_eval(episodes_per_task=1, max_steps=12, num_envs=1, n_action_steps=1),
    )  # fmt: skip
    assert config.model.cameras == ["corner2"]
    threads = torch.get_num_threads()
    try:
        run_demo(config)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "demo"
    info = json.loads((out / "data" / "meta" / "info.json").read_text())
    assert info["robot_type"] == "metaworld_sawyer" and info["total_episodes"] == 2
    assert info["features"]["observation.images.corner2"]["shape"][:2] == [32, 32]  # the model's size
    saved = json.loads((out / "results.json").read_text())
    entry = saved["tasks"][EASY[0]]
    assert entry["episodes"] == 1 and entry["episode_results"][0]["length"] <= 12
    assert saved["demo"]["train_steps"] == 3 and saved["protocol"]["cameras"] == ["corner2"]
    assert saved["protocol"]["max_steps"] == {EASY[0]: 12} and saved["protocol"]["image_size"] == [32, 32]
    assert saved["metaworld"]["mean_over_tasks"]["episodes"] == 1
    assert list(saved["metaworld"]["buckets"]) == ["easy"]
    report = (out / "report.md").read_text()
    assert "Meta-World by difficulty" in report and "training curves" in report
