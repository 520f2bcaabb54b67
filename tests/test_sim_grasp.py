"""The grasp-timing metric: when the fingers reach the object to pick, and whether the gripper closes soon."""

from __future__ import annotations

import numpy as np

import sim
from policies.evaluation.evaluate import evaluate
from policies.evaluation.report import grasp_markdown
from sim.grasp import CLOSE_STEP, NEVER, REACH_STEP, GraspTimer, closed_within

OBJECT = np.array([0.5, 0.0, 0.02])


def test_the_timer_counts_a_close_only_after_the_reach():
    timer = GraspTimer()
    timer.update(0, OBJECT + [0, 0, 0.1], OBJECT, gripper=1.0)  # closed far above: not a grasp
    timer.update(1, OBJECT + [0, 0, 0.01], OBJECT, gripper=-1.0)  # reached, still open
    timer.update(2, OBJECT + [0, 0, 0.05], OBJECT, gripper=-1.0)
    timer.update(3, OBJECT, OBJECT, gripper=1.0)
    timer.update(4, OBJECT, OBJECT, gripper=1.0)
    assert timer.info() == {REACH_STEP: 1, CLOSE_STEP: 3}
    timer.reset()
    assert timer.info() == {REACH_STEP: NEVER, CLOSE_STEP: NEVER}


def test_closed_within_counts_reaches_and_timely_closes():
    episodes = [
        {REACH_STEP: 5, CLOSE_STEP: 6},
        {REACH_STEP: 5, CLOSE_STEP: 20},  # too late
        {REACH_STEP: 5, CLOSE_STEP: NEVER},  # hovered with open fingers
        {REACH_STEP: NEVER, CLOSE_STEP: NEVER},  # never got there
    ]
    assert closed_within(episodes, steps=10) == {
        "episodes": 4,
        "reached": 3,
        "closed_in_time": 1,
        "window_steps": 10,
    }
    assert closed_within([{}, {"success": True}], steps=10) is None  # a task without a grasp


def _expert_infos(task: str) -> dict:
    env = sim.make(task, cameras=())
    obs, info = env.reset(seed=0)
    expert = sim.make_expert(env)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.infer(obs)["actions"][0])
        done = terminated or truncated
    env.close()
    return info


def test_picking_tasks_time_the_experts_grasp_and_other_tasks_say_nothing():
    for task in ("PickUp", "Stack", "PlaceInBin", "PlaceOnTarget"):
        info = _expert_infos(task)
        assert info["success"] and info[REACH_STEP] != NEVER, task
        assert 0 <= info[CLOSE_STEP] - info[REACH_STEP] <= 3, (task, info)
    assert REACH_STEP not in _expert_infos("PressButton")


def test_the_evaluation_reports_grasps_of_the_tasks_that_pick():
    options = {"max_steps": 30}
    document = evaluate("expert", ["PickUp", "PressButton"], 2, env_options=options, progress=False)
    assert document["tasks"]["PickUp"]["grasp"] == {
        "episodes": 2,
        "reached": 2,
        "closed_in_time": 2,
        "window_steps": 10,
    }
    assert "grasp" not in document["tasks"]["PressButton"]
    episode = document["tasks"]["PickUp"]["episode_results"][0]
    assert episode[CLOSE_STEP] >= episode[REACH_STEP] >= 0
    table = grasp_markdown(document)
    assert "| PickUp | 2/2 | 2/2 |" in table and "PressButton" not in table
