"""policies.suites: every registered suite keeps the contract the apps rely on (``base.Suite``), and one
function picks the suite of a config's tasks. Building environments runs for the suites installed here
(Meta-World's in .venv-metaworld); the rest needs no simulator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import sim
from policies import suites
from sim.contract import OBS_IMAGES, OBS_STATE

# Per suite: a name it owns (a task or a group), a task id that name resolves to, and an unknown name.
EXAMPLES = {
    "sim": ("all", "PickUp", "NoSuchTask"),
    "metaworld": ("metaworld/mt10", "metaworld/reach-v3", "metaworld/no-such-task-v3"),
}
# The keys the evaluator writes into a results document and its protocol: a suite adds keys of its own.
DOCUMENT_KEYS = {"tasks", "mean_success", "mean_ci95", "protocol", "timing", "instruction_modes"}
PROTOCOL_KEYS = {"seeds", "split", "image_size", "cameras", "max_steps", "control_hz", "instruction"}


def _recording(**changes) -> SimpleNamespace:
    """The recording options ``check_recording`` reads, at RecordConfig's defaults."""
    options = {"image_size": [64, 64], "cameras": list(sim.CAMERAS), "goals_per_scene": 1}
    return SimpleNamespace(**{**options, "holdout_templates": None, **changes})


# Per suite: options it must refuse, as (method, arguments, a word its error must hold).
REFUSED = {
    "sim": [
        ("check_recording", (_recording(image_size=[0, 32]),), "image_size"),
        ("check_recording", (_recording(cameras=["nope"]),), "nope"),
        ("check_recording", (_recording(holdout_templates={"NoSuchTask": 0}),), "NoSuchTask"),
    ],
    "metaworld": [
        ("check_recording", (_recording(image_size=[0, 32]),), "image_size"),
        ("check_recording", (_recording(goals_per_scene=2),), "goals_per_scene"),
        ("check_recording", (_recording(holdout_templates="last"),), "holdout_templates"),
        ("check_recording", (_recording(cameras=["wrist"]),), "cameras"),
        ("check_evaluation", (["normal", "swap"], None, None), "instruction"),
        ("check_evaluation", (["normal"], {"cameras": ["wrist"]}, None), "cameras"),
        ("check_evaluation", (["normal"], None, {"corner2": "wrist"}), "camera_map"),
        ("check_evaluation", (["normal"], {"lighting_jitter": 0.1}, None), "lighting_jitter"),
        ("check_evaluation", (["normal"], {"max_steps": 501}, None), "max_steps"),
        ("check_instruction_modes", (["blank"], "instruction_eval", "leave it empty"), "instruction_eval"),
        ("model_cameras", (["agentview"], "train.model.cameras"), "train.model.cameras"),
    ],
}
CASES = [(name, *case) for name, cases in REFUSED.items() for case in cases]


def _suite(name: str) -> suites.Suite:
    return next(suite for suite in suites.SUITES if suite.name == name)


def _installed(suite: suites.Suite) -> bool:
    try:
        suite.check_installed()
    except ImportError:
        return False
    return True


def test_every_registered_suite_has_its_examples_and_a_prefix_of_its_own():
    assert sorted(EXAMPLES) == sorted(REFUSED) == sorted(suite.name for suite in suites.SUITES)
    prefixes = [suite.prefix for suite in suites.SUITES]
    assert len(set(prefixes)) == len(prefixes) and [p for p in prefixes if not p] == [suites.DEFAULT.prefix]


@pytest.mark.parametrize("suite", suites.SUITES, ids=lambda suite: suite.name)
def test_a_suite_states_its_facts_resolves_its_names_and_defaults_its_episodes(suite):
    assert suite.title and suite.robot_type and suite.seed_draws and suite.fps >= 1
    assert suite.cameras and suite.state_names and suite.action_names
    known, task, unknown = EXAMPLES[suite.name]
    names = suites.resolve(known)
    assert task in names and suites.of(names) is suite and all(suite.owns(name) for name in names)
    assert suites.resolve([task, task]) == [task]  # repeats dropped
    assert suite.resolve(names) == names  # resolved names resolve to themselves
    with pytest.raises(ValueError) as error:
        suites.resolve(unknown)
    assert "\n" not in str(error.value) and unknown in str(error.value)
    assert suite.episodes(None) == suite.episodes_per_task >= 1 and suite.episodes(3) == 3


@pytest.mark.parametrize(("name", "method", "arguments", "word"), CASES)
def test_an_option_a_suite_cannot_honour_is_refused_in_one_line_naming_it(name, method, arguments, word):
    with pytest.raises(ValueError) as error:
        getattr(_suite(name), method)(*arguments)
    assert "\n" not in str(error.value) and word in str(error.value)


@pytest.mark.parametrize("suite", suites.SUITES, ids=lambda suite: suite.name)
def test_a_suite_accepts_the_apps_defaults(suite):
    cameras = suite.check_recording(_recording())  # our default cameras, as RecordConfig has them
    assert cameras and set(cameras) <= set(suite.cameras)
    assert suite.model_cameras(list(sim.CAMERAS), "train.model.cameras") == cameras
    suite.check_evaluation(["normal"], None, None)
    suite.check_instruction_modes(["normal"], "instruction_eval", "")
    assert set(suite.record_options((96, 96))) <= {"cameras", "image_size"}


@pytest.mark.parametrize("suite", suites.SUITES, ids=lambda suite: suite.name)
def test_what_a_suite_adds_to_results_never_overwrites_the_evaluators_keys(suite):
    task = EXAMPLES[suite.name][1]
    entry = {"success_rate": 0.5, "successes": 1, "episodes": 2, "ci95": [0.1, 0.9]}
    added = suite.summarise({task: entry})
    assert not set(added) & DOCUMENT_KEYS
    section = suite.markdown({"tasks": {task: entry}, **added})
    assert bool(section) == bool(added)  # a section in report.md for what it added, and only then


def test_one_suite_per_run_and_unknown_names_say_how_each_suite_spells_its_ids():
    mixed = ["metaworld/reach-v3", "PickUp"]
    for purpose, verb in ((suites.RECORD, "cannot record"), (suites.EVALUATE, "cannot evaluate")):
        with pytest.raises(ValueError, match=rf"{verb} Meta-World \['metaworld/reach-v3'\] and our tasks"):
            suites.resolve(mixed, purpose)
    with pytest.raises(ValueError, match="tasks of one suite expected"):
        suites.of(mixed)
    assert suites.of(None) is suites.of([]) is suites.of("all") is suites.DEFAULT
    with pytest.raises(ValueError, match="Meta-World ids: metaworld/<task>"):
        suites.resolve("reach-v3")  # Meta-World's id with its prefix forgotten


@pytest.mark.parametrize("suite", suites.SUITES, ids=lambda suite: suite.name)
def test_a_suites_environments_and_expert_follow_its_facts(suite):
    """Where its simulator is installed: recording's and evaluation's environments observe its state and
    cameras, step at its fps, and its expert acts in its action size; ``describe`` adds keys of its own."""
    if not _installed(suite):
        pytest.skip(f"{suite.title}'s simulator is not installed here")
    task = EXAMPLES[suite.name][1]
    camera = suite.cameras[0]
    env = suite.make_env(task, (32, 32), (camera,), None)
    obs, _ = env.reset(seed=0)
    assert obs[OBS_STATE].shape == (len(suite.state_names),) and list(obs[OBS_IMAGES]) == [camera]
    assert obs[OBS_IMAGES][camera].shape == (32, 32, 3) and env.metadata["render_fps"] == suite.fps
    actions = suite.make_expert(task, env, 0.0, 0).infer(obs)["actions"]
    assert actions.shape[-1] == len(suite.action_names) and np.isfinite(actions).all()
    env.step(actions[0])
    env.close()
    settings = suite.eval_settings(SimpleNamespace(cameras=[camera], image_size=(32, 32)), None, False)
    env = suite.make_eval_env(task, settings)
    obs, _ = env.reset(seed=0)
    assert obs[OBS_STATE].shape == (len(suite.state_names),) and list(obs[OBS_IMAGES]) == [camera]
    env.close()
    assert not set(suite.describe(settings, [task])) & PROTOCOL_KEYS
