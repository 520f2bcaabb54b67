"""Does a policy read its instruction? vla-eval's instruction modes: swap, blank and heldout (CPU, fast)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sim
from policies.evaluation.evaluate import EvalConfig, evaluate, evaluate_instruction_following, run
from policies.evaluation.instruction import instruction_markdown, swap_goal
from policies.seeds import HELDOUT

LANGUAGE = sim.language_tasks()


def _episodes(document: dict, mode: str, task: str) -> list[dict]:
    return document["instruction_modes"][mode]["tasks"][task]["episode_results"]


def _matches(template: str, text: str) -> bool:
    """Whether ``text`` is ``template`` with its fields filled in."""
    pattern = re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(template))
    return re.fullmatch(pattern, text) is not None


def test_the_expert_given_the_swapped_goal_succeeds_on_it():
    # The expert plans from the goal the environment judges, so it must follow the swap: a swap that
    # changed the words but not the target, or the target but not the scene, would show here.
    document = evaluate("expert", LANGUAGE, 2, instruction=["normal", "swap"], progress=False)
    assert document["protocol"]["instruction"]["modes"] == ["normal", "swap"]
    for task in LANGUAGE:
        normal, swapped = _episodes(document, "normal", task), _episodes(document, "swap", task)
        assert document["tasks"][task]["episode_results"] == normal  # the top level holds normal, as before
        assert all(episode["success"] for episode in normal + swapped), task
        for before, after in zip(normal, swapped, strict=True):
            assert after["seed"] == before["seed"] and after["original_instruction"] == before["instruction"]
            assert after["instruction"] != before["instruction"] == after["original_instruction"]
            assert after["policy_instruction"] == after["instruction"]
    # The swapped goal is drawn from the seed alone, among the scene's other goals.
    env = sim.make("Stack", cameras=())
    env.reset(seed=HELDOUT.start)
    task = env.unwrapped.task
    goal = swap_goal(HELDOUT.start, task.goals(), task.goal)
    assert goal != task.goal and goal == swap_goal(HELDOUT.start, task.goals(), task.goal)
    _, info = env.reset(seed=HELDOUT.start, options={"goal": goal})
    assert info["instruction"] == _episodes(document, "swap", "Stack")[0]["instruction"]
    env.close()


class _Reader:
    """Zero actions; remembers every instruction it was given. No infer_batch: one environment."""

    cameras = ()

    def __init__(self):
        self.seen: list[str] = []

    def reset(self):
        pass

    def infer(self, obs):
        self.seen.append(obs["instruction"])
        return {"actions": np.zeros((4, 7), np.float32)}


def test_blank_gives_the_policy_an_empty_instruction_and_reports_chance():
    policy = _Reader()
    tasks = ["PressButton", "Stack", "OpenDrawer"]  # blank works where the scene alone decides, too
    document = evaluate(policy, tasks, 2, instruction="blank", env_options={"max_steps": 4}, progress=False)
    assert policy.seen and set(policy.seen) == {""}
    chance = {"PressButton": 1 / 3, "Stack": 1 / 6, "OpenDrawer": 1.0}
    protocol = document["protocol"]["instruction"]
    assert protocol["modes"] == ["blank"] and protocol["top_level"] == "blank"
    assert protocol["chance"] == pytest.approx(chance)
    blank = document["instruction_modes"]["blank"]
    assert {task: entry["chance"] for task, entry in blank["tasks"].items()} == pytest.approx(chance)
    assert blank["mean_chance"] == pytest.approx(np.mean(list(chance.values())))
    for task in tasks:
        for episode in blank["tasks"][task]["episode_results"]:
            assert (
                episode["policy_instruction"] == ""
                and episode["instruction"] == episode["original_instruction"]
            )
        assert document["tasks"][task] is blank["tasks"][task]  # no normal run: the top level holds blank
    table = instruction_markdown(document)
    assert "| PressButton | 0% [0%-66%] (0/2) (chance 33%) |" in table and "| task | blank |" in table


def test_heldout_uses_each_tasks_held_out_template():
    named = {"PressButton": 0}  # the others keep their last template out
    document = evaluate(
        "expert", LANGUAGE, 2, instruction="heldout", holdout_templates=named, env_options={"max_steps": 3},
        progress=False,
    )  # fmt: skip
    templates = {**sim.holdout_templates("last"), "PressButton": "press the {color} button"}
    assert document["protocol"]["instruction"]["heldout_templates"] == templates
    for task in LANGUAGE:
        for episode in _episodes(document, "heldout", task):
            assert _matches(templates[task], episode["instruction"]), (task, episode["instruction"])
            assert episode["policy_instruction"] == episode["instruction"]


def test_modes_that_need_alternatives_refuse_the_drawers_and_bad_options_name_the_choices():
    for mode in ("swap", "heldout"):
        with pytest.raises(ValueError, match=rf"instruction={mode} .*OpenDrawer has a single goal .*PickUp"):
            evaluate("expert", ["PressButton", "OpenDrawer"], 1, instruction=["normal", mode], progress=False)
        with pytest.raises(ValueError, match=rf"instruction={mode} .*CloseDrawer"):
            EvalConfig(policy="expert", task="all", instruction=[mode])
    with pytest.raises(
        ValueError, match=r"unknown instruction modes \['shuffle'\]; valid modes: \['normal', 'swap'"
    ):
        EvalConfig(policy="expert", instruction=["normal", "shuffle"])
    with pytest.raises(ValueError, match="unknown PickUp instruction template 'lift it'; its templates"):
        EvalConfig(
            policy="expert", task="PickUp", instruction="heldout", holdout_templates={"PickUp": "lift it"}
        )
    with pytest.raises(ValueError, match="instruction=heldout needs holdout_templates"):
        EvalConfig(policy="expert", task="PickUp", instruction="heldout", holdout_templates="none")
    EvalConfig(policy="expert", task="all", instruction="blank")  # blank is fine on every task


def test_vla_eval_instruction_option_writes_every_mode_to_results_and_report(tmp_path):
    import policies.evaluation.evaluate  # noqa: F401  (registers the config schema)

    overrides = [
        "policy=expert", "task=[PressButton]", "episodes_per_task=2", "instruction=[swap,normal,blank]",
        "tensorboard=false", "render_size=[32,32]", f"out={tmp_path}",
    ]  # fmt: skip
    with initialize_config_module(config_module="configs", version_base="1.3"):
        config = OmegaConf.to_object(compose("eval", overrides=overrides))
    assert config.instruction == ["swap", "normal", "blank"] and config.holdout_templates == "last"
    run(config)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["instruction_modes"]) == {"swap", "normal", "blank"}
    assert results["protocol"]["instruction"]["top_level"] == "normal"  # normal stays on top when run
    assert results["tasks"] == results["instruction_modes"]["normal"]["tasks"]
    assert results["tasks"]["PressButton"]["video"] == "videos/PressButton.mp4"
    assert (
        results["instruction_modes"]["swap"]["tasks"]["PressButton"]["video"] == "videos/PressButton-swap.mp4"
    )
    assert (tmp_path / "videos" / "PressButton-blank.mp4").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "## Instruction following" in report and "| task | swap | normal | blank |" in report
    assert (
        "| PressButton | 100% [34%-100%] (2/2) | 100% [34%-100%] (2/2) | 100% [34%-100%] (2/2) (chance 33%) |"
        in report
    )


def test_swap_runs_the_same_episodes_on_two_environments():
    one = evaluate_instruction_following("expert", ["PressButton"], 2, modes="swap", progress=False)
    two = evaluate_instruction_following(
        "expert", ["PressButton"], 2, modes="swap", num_envs=2, progress=False
    )
    assert set(one["instruction_modes"]) == {"swap"}
    assert _episodes(one, "swap", "PressButton") == _episodes(two, "swap", "PressButton")
    assert all(isinstance(e["num_goals"], int) for e in _episodes(two, "swap", "PressButton"))
