"""Wordings people use (issue 21, item 8): each language task's held-out wordings, never drawn by a reset,
and ``vla-eval instruction=wordings``, which evaluates them (CPU, fast)."""

from __future__ import annotations

import json
from contextlib import suppress

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sim
from policies.apps.demo import DemoConfig
from policies.evaluation.evaluate import EvalConfig, evaluate, run
from policies.evaluation.instruction import draw_wording
from policies.seeds import HELDOUT
from sim.contract import OBS_INSTRUCTION

LANGUAGE = sim.language_tasks()
SEEDS = range(HELDOUT.start, HELDOUT.start + 40)


def _said(task_names, goals) -> set[str]:
    """Every instruction a reset can say in a scene of these goals: any language task's template (the
    target tasks share their scene) filled with any goal whose fields it takes."""
    said = set()
    for name in task_names:
        for template in sim.TASKS[name].instructions:
            for goal in goals:
                with suppress(KeyError):  # another task's template, naming fields this scene's goals lack
                    said.add(template.format(**goal))
    return said


def test_each_wording_names_exactly_one_goal_of_every_scene_in_words_no_reset_says():
    assert set(LANGUAGE) == {"PickUp", "PlaceInBin", "PlaceOnTarget", "PressButton", "PushToTarget", "Stack"}
    assert sim.TASKS["OpenDrawer"].unseen_wordings == () == sim.TASKS["CloseDrawer"].unseen_wordings
    for name in LANGUAGE:
        wordings = sim.TASKS[name].unseen_wordings
        assert 6 <= len(wordings) <= 8 and len(set(wordings)) == len(wordings), name
        assert not set(wordings) & set(sim.TASKS[name].instructions), name
        env = sim.make(name, cameras=())
        for seed in list(SEEDS)[:6]:
            env.reset(seed=seed)
            goals = env.unwrapped.task.goals()
            said = _said(LANGUAGE, goals)
            for wording in wordings:
                texts = [wording.format(**goal) for goal in goals]  # KeyError: a field no goal has
                # Distinct goals, distinct words: what the wording leaves out, the scene makes obvious.
                assert len(set(texts)) == len(goals), (name, wording, goals)
                assert not set(texts) & said, (name, wording)
                assert all(env.observation_space[OBS_INSTRUCTION].contains(text) for text in texts), wording
        env.close()


def test_no_reset_ever_draws_a_wording():
    for name in LANGUAGE:
        env, wordings = sim.make(name, cameras=()), sim.TASKS[name].unseen_wordings
        for seed in SEEDS:
            _, info = env.reset(seed=seed)
            goals = env.unwrapped.task.goals()
            assert info["instruction"] not in {w.format(**goal) for w in wordings for goal in goals}
        env.close()


def _episodes(document: dict, mode: str, task: str) -> list[dict]:
    return document["instruction_modes"][mode]["tasks"][task]["episode_results"]


def test_wordings_mode_names_the_drawn_goal_in_a_wording_and_counts_each_wording(tmp_path):
    tasks = ["PressButton", "PickUp"]
    config = EvalConfig(
        policy="expert", task=tasks, episodes_per_task=3, instruction=["normal", "wordings"],
        tensorboard=False, render_size=[32, 32], out=str(tmp_path),
    )  # fmt: skip
    run(config, card=False)
    document = json.loads((tmp_path / "results.json").read_text())
    protocol = document["protocol"]["instruction"]
    assert protocol["wordings"] == {task: list(sim.TASKS[task].unseen_wordings) for task in tasks}
    for task in tasks:
        wordings = sim.TASKS[task].unseen_wordings
        normal, worded = _episodes(document, "normal", task), _episodes(document, "wordings", task)
        for before, after in zip(normal, worded, strict=True):
            # The same scene and drawn goal; the policy read that goal in the wording the seed draws.
            assert after["seed"] == before["seed"]
            assert after["instruction"] == after["original_instruction"] == before["instruction"]
            assert after["wording"] == draw_wording(after["seed"], wordings)
            assert after["policy_instruction"] not in (after["instruction"], after["wording"])
            env = sim.make(task, cameras=())
            env.reset(seed=after["seed"])
            assert after["policy_instruction"] == after["wording"].format(**env.unwrapped.task.goal)
            env.close()
        # The expert acts on the drawn goal, which the judge follows: every episode succeeds.
        assert all(episode["success"] for episode in normal + worded), task
        counts = document["instruction_modes"]["wordings"]["tasks"][task]["wordings"]
        assert list(counts) == list(wordings)
        assert sum(c["episodes"] for c in counts.values()) == 3
        assert sum(c["successes"] for c in counts.values()) == 3
        for wording, c in counts.items():
            drawn = [e for e in worded if e["wording"] == wording]
            assert c["episodes"] == len(drawn) and c["success_rate"] == (1.0 if drawn else None)
    report = (tmp_path / "report.md").read_text()
    assert "| task | normal | wordings |" in report and "Success per held-out wording" in report
    wording = _episodes(document, "wordings", "PickUp")[0]["wording"]
    assert f"| PickUp | {wording} | 100% (" in report


class _BatchReader:
    """Zero actions, one per query (so a query every step); remembers every instruction it read."""

    cameras = ()

    def __init__(self):
        self.seen: list[str] = []

    def reset(self):
        pass

    def infer(self, obs):
        return self.infer_batch([obs])[0]

    def infer_batch(self, observations):
        self.seen.extend(obs[OBS_INSTRUCTION] for obs in observations)
        return [{"actions": np.zeros((1, 7), np.float32)} for _ in observations]


@pytest.mark.parametrize("num_envs", [1, 2])
def test_the_policy_reads_the_wording_on_every_step_in_process_and_in_workers(num_envs):
    policy, steps = _BatchReader(), 4
    document = evaluate(
        policy, ["PressButton"], 3, num_envs=num_envs, instruction="wordings",
        env_options={"max_steps": steps}, progress=False,
    )  # fmt: skip
    episodes = _episodes(document, "wordings", "PressButton")
    read = [episode["policy_instruction"] for episode in episodes]
    assert len(policy.seen) == 3 * steps and sorted(set(policy.seen)) == sorted(set(read))
    assert all(policy.seen.count(text) == steps * read.count(text) for text in read)


def test_wordings_needs_language_tasks_with_wordings_and_the_apps_accept_it(monkeypatch):
    with pytest.raises(ValueError, match=r"instruction=wordings .*OpenDrawer has a single goal .*PickUp"):
        evaluate("expert", ["PressButton", "OpenDrawer"], 1, instruction="wordings", progress=False)
    with pytest.raises(ValueError, match=r"instruction=wordings .*CloseDrawer"):
        EvalConfig(policy="expert", task="all", instruction=["normal", "wordings"])
    with monkeypatch.context() as patch:
        patch.setattr(sim.TASKS["PickUp"], "unseen_wordings", ())
        with pytest.raises(
            ValueError, match=r"instruction=wordings needs held-out wordings; PickUp has none"
        ):
            EvalConfig(policy="expert", task=["PressButton", "PickUp"], instruction="wordings")
    with initialize_config_module(config_module="configs", version_base="1.3"):
        overrides = ["policy=expert", "task=[PressButton,PickUp]", "instruction=[normal,wordings]"]
        assert OmegaConf.to_object(compose("eval", overrides=overrides)).instruction == ["normal", "wordings"]
        overrides = ["task=[PressButton,OpenDrawer]", "instruction_eval=[swap,wordings]"]
        demo = OmegaConf.to_object(compose("demo", overrides=overrides))
    assert isinstance(demo, DemoConfig) and demo.instruction_eval == ["swap", "wordings"]
    assert demo.language_tasks == ["PressButton"]  # the demo evaluates the modes on these
