"""Long-horizon tasks, skills, the oracle decomposition and per-frame skill labels (sim only, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim import skills
from sim.skills.execute import CUT, DONE, run_skill
from sim.skills.library import PickUp, PutOn

LONG = sim.long_horizon_tasks()
EVERY_TASK = sim.list_tasks() + LONG


def _episode(task: str, seed: int) -> tuple[bool, int]:
    env = sim.make(task, cameras=())
    expert = sim.make_expert(env)
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.infer(obs)["actions"][0])
        done = terminated or truncated
    env.close()
    return info["success"], info["steps"]


@pytest.mark.parametrize("task", LONG)
def test_experts_solve_the_long_horizon_tasks(task):
    outcomes = [_episode(task, seed) for seed in range(20)]
    assert sum(success for success, _ in outcomes) >= 19, outcomes  # >= 95%
    longest = max(steps for success, steps in outcomes if success)
    assert longest < sim.ALL_TASKS[task].max_steps / 2, "leave room to recover from drops"


def test_long_horizon_tasks_stay_out_of_the_default_task_lists():
    assert LONG == ["PutAllInBin", "StackThree"]
    assert sim.resolve_tasks("all") == sim.list_tasks() and not set(LONG) & set(sim.list_tasks())
    assert not set(LONG) & set(sim.language_tasks())
    assert sim.resolve_tasks(["StackThree", "PickUp"]) == ["StackThree", "PickUp"]
    with pytest.raises(ValueError, match=r"long-horizon tasks: \['PutAllInBin', 'StackThree'\]"):
        sim.resolve_tasks(["StackFour"])


def test_put_all_in_bin_names_one_to_three_objects_each_by_a_name_of_its_own():
    env = sim.make("PutAllInBin", cameras=())
    counts = set()
    for seed in range(40):
        env.reset(seed=seed)
        task = env.unwrapped.task
        names = [t.name for t in task.things()]
        assert len(set(names)) == len(names), names
        for goal in task.goals():
            task.set_goal(goal)
            counts.add(len(task.targets()))
            assert 1 <= len(task.targets()) <= 3
    assert counts == {1, 2, 3}
    env.close()


def _expected_plan(task) -> list[str]:
    """The skills a task's goal asks for, written out from the goal alone."""
    goal, things = task.goal, {t.body: t.name for t in task.things()}
    if task.name == "StackThree":
        b, m, t = (f"{goal[k]} cube" for k in ("bottom", "middle", "top"))
        return [f"pick up the {m}", f"put the {m} on the {b}", f"pick up the {t}", f"put the {t} on the {m}"]
    if task.name == "PutAllInBin":
        named = [things[body] for body in task.targets()]
        return [step for name in named for step in (f"pick up the {name}", f"put the {name} in the bin")]
    one = {
        "PickUp": lambda: [f"pick up the {goal['color']} {goal['object']}"],
        "PlaceInBin": lambda: [
            f"pick up the {goal['color']} cube",
            f"put the {goal['color']} cube in the bin",
        ],
        "Stack": lambda: [
            f"pick up the {goal['top']} cube",
            f"put the {goal['top']} cube on the {goal['bottom']} cube",
        ],
        "PlaceOnTarget": lambda: [
            f"pick up the {goal['color']} cube",
            f"put the {goal['color']} cube on the {goal['target']} target",
        ],
        "PushToTarget": lambda: [f"push the {goal['color']} cube to the {goal['target']} target"],
        "PressButton": lambda: [f"press the {goal['color']} button"],
        "OpenDrawer": lambda: ["open the drawer"],
        "CloseDrawer": lambda: ["close the drawer"],
    }
    return one[task.name]()


@pytest.mark.parametrize("task", EVERY_TASK)
def test_the_oracle_decomposes_every_template_of_every_task(task):
    env = sim.make(task, cameras=())
    for seed in range(3):
        for template in env.unwrapped.task.instructions:
            _, info = env.reset(seed=seed, options={"template": template})
            scene = env.unwrapped.task
            state = skills.observe(scene, env.unwrapped.world)
            plan = [s.text for s in skills.remaining(scene, state)]
            assert plan == _expected_plan(scene), info["instruction"]
            assert plan[0] in {s.text for s in skills.next_options(scene, state)}
    env.close()


@pytest.mark.parametrize("task", EVERY_TASK)
def test_the_skills_executors_carry_out_the_oracle_plan(task):
    env = sim.make(task, cameras=())
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        scene, world = env.unwrapped.task, env.unwrapped.world
        library = {s.text for s in skills.skill_library(scene)}
        state = skills.observe(scene, world)
        for skill in skills.remaining(scene, state):
            assert skill.text in library and skill.feasible(state), skill
            run = run_skill(env, skill, obs)
            assert run.success, (seed, skill, run.ending)
            obs, state = run.obs, skill.effect(state)
            if run.episode_over:
                break
        assert run.episode_over and run.info["success"], (task, seed)
    env.close()


def test_affordances_follow_the_scene():
    env = sim.make("StackThree", cameras=())
    env.reset(seed=0)
    scene = env.unwrapped.task
    first, second, *_ = cubes = scene.things()
    feasible = lambda state: [s.text for s in skills.skill_library(scene) if s.feasible(state)]  # noqa: E731
    state = skills.observe(scene, env.unwrapped.world)
    assert feasible(state) == [f"pick up the {t.name}" for t in cubes]
    holding = PickUp(first).effect(state)
    assert feasible(holding) == [f"put the {first.name} on the {t.name}" for t in cubes[1:]]
    stacked = PutOn(first, second).effect(holding)
    assert feasible(stacked) == [f"pick up the {t.name}" for t in cubes if t is not second]
    env.close()


def test_a_skill_that_never_terminates_is_cut_at_its_step_limit_and_fails():
    class Slow(PickUp):
        max_steps = 4  # far too few to reach the object

    env = sim.make("PickUp", cameras=())
    obs, _ = env.reset(seed=0)
    scene = env.unwrapped.task
    run = run_skill(env, Slow(scene.things()[0]), obs)
    assert (run.success, run.ending, run.steps) == (False, CUT, 4) and not run.episode_over
    env.close()


def test_skill_labels_follow_the_expert_through_its_skills():
    env = sim.make("PlaceInBin", cameras=())
    obs, info = env.reset(seed=3)
    expert, labeller = sim.make_expert(env, noise=0.05, seed=3), skills.SkillLabeller(env)
    color = env.unwrapped.task.goal["color"]
    labels, done = [], False
    while not done:
        labels.append(labeller.label())
        obs, _, terminated, truncated, info = env.step(expert.infer(obs)["actions"][0])
        done = terminated or truncated
    assert info["success"]
    pick, place = f"pick up the {color} cube", f"put the {color} cube in the bin"
    switch = labels.index(place)
    assert labels[:switch] == [pick] * switch and labels[switch:] == [place] * (len(labels) - switch)
    assert 5 < switch < len(labels) - 3
    # The pick's termination fired at the switch: the cube was held and lifted there.
    assert run_done_at(env, seed=3, frames=switch) is True
    env.close()


def run_done_at(env, seed: int, frames: int) -> bool:
    """Replay ``frames`` steps of the seeded noisy expert and ask the pick skill whether it is done."""
    obs, _ = env.reset(seed=seed)
    expert = sim.make_expert(env, noise=0.05, seed=seed)
    scene, world = env.unwrapped.task, env.unwrapped.world
    pick = skills.remaining(scene, skills.observe(scene, world))[0]
    pick.begin(world)
    for _ in range(frames):
        obs, *_ = env.step(expert.infer(obs)["actions"][0])
    return pick.done(world)


def test_scene_descriptions_say_what_changed():
    env = sim.make("PutAllInBin", cameras=())
    env.reset(seed=1)
    scene = env.unwrapped.task
    state = skills.observe(scene, env.unwrapped.world)
    assert skills.describe(state) == "holding: nothing. in the bin: nothing."
    first, second = skills.remaining(scene, state)[:2]
    name = first.text.removeprefix("pick up the ")
    assert skills.describe(first.effect(state)) == f"holding: the {name}. in the bin: nothing."
    assert skills.describe(second.effect(first.effect(state))) == f"holding: nothing. in the bin: the {name}."
    assert np.isfinite(env.unwrapped.world.body_pos("bin")).all()
    env.close()


def test_done_ending_is_reported_when_the_termination_signal_fires():
    env = sim.make("PickUp", cameras=())
    obs, _ = env.reset(seed=1)
    scene = env.unwrapped.task
    other = next(t for t in scene.things() if t.body != scene.target)  # not the goal: the episode goes on
    run = run_skill(env, PickUp(other), obs)
    assert run.success and run.ending == DONE and not run.episode_over
    env.close()


def test_a_cube_is_picked_off_the_top_of_a_three_cube_stack():
    env = sim.make("StackThree", cameras=())
    obs, _ = env.reset(seed=2)
    scene = env.unwrapped.task
    cubes = {t.body: t for t in scene.things()}
    everything = tuple(cubes)
    spare = next(c for c in cubes.values() if c.body not in (scene.bottom, scene.middle, scene.top))
    tower = [
        PickUp(cubes[scene.middle], everything),
        PutOn(cubes[scene.middle], cubes[scene.bottom]),
        PickUp(spare, everything),
        PutOn(spare, cubes[scene.middle]),  # not the goal's top: the episode goes on
    ]
    for skill in tower:
        run = run_skill(env, skill, obs)
        assert run.success, skill
        obs = run.obs
    run = run_skill(env, PickUp(spare, everything), obs)
    assert run.success and run.ending == DONE, run.ending
    env.close()
