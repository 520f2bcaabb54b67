"""Skill labels for a recorded demonstration: the sub-instruction being executed at each of its frames.

    from policies.recording.relabel import skill_labels
    skill_labels("data/demos", 3)   # ["pick up the red cube", ..., "put the red cube in the bin", ...]

A ``vla-record`` episode is a function of its task, scene seed, goal rotation and the recording's settings
(``meta/recording.json``), so it replays exactly: the replay steps the same expert from the same state and
``sim.skills.SkillLabeller`` names the skill under way at each frame from the simulator's state. Every
replayed state is compared with the recorded one; a replay that leaves the recording is an error naming the
frame, never a silent mislabel. PlaceInBin, PlaceOnTarget and Stack episodes then hold a pick-up skill and a
place skill each, and their pick-up frames teach the same skill as PickUp's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policies import suites
from policies.recording.app import goals_per_scene, job_of
from policies.recording.settings import load_settings
from policies.recording.worker import episode_setup
from sim.contract import OBS_STATE
from sim.skills import SkillLabeller
from vla.data.layout import DatasetError
from vla.data.meta import load_meta
from vla.data.table import load_table


def skill_labels(root: str | Path, episode: int) -> list[str]:
    """One skill text per frame of episode ``episode`` of the ``vla-record`` dataset at ``root``."""
    meta = load_meta(root)
    if not 0 <= episode < meta.total_episodes:
        raise ValueError(f"{meta.root} has episodes 0..{meta.total_episodes - 1}, no episode {episode}")
    row = meta.episodes[episode]
    task = str(row["vla/sim_task"])
    suite = suites.of(task)
    if not suite.skill_labels:
        raise ValueError(f"skill labels exist for our tasks only (sim.skills), not {suite.title}'s {task}")
    stored = load_settings(meta.root)
    job = job_of(
        task, int(row["vla/attempt"]), int(stored["seed"]), goals_per_scene(task, stored["goals_per_scene"])
    )
    if job.seed != int(row["vla/seed"]):
        raise DatasetError(
            meta.root,
            f"episode {episode}: attempt {job.attempt} implies seed {job.seed}, the row says {row['vla/seed']}",
        )
    settings = {
        "image_size": tuple(stored["image_size"]),
        "cameras": (),  # the physics alone: rendering changes nothing a label depends on
        "noise": float(stored["noise"]),
        "holdout_templates": stored["holdout_templates"],
    }
    table = load_table(meta)
    states = table.state[table.episode_starts[episode] : table.episode_starts[episode + 1]]
    env, expert, options = episode_setup(job, settings)
    obs, _ = env.reset(seed=job.seed, options=options)
    labeller = SkillLabeller(env)
    labels = []
    for frame, recorded in enumerate(states):
        if not np.array_equal(obs[OBS_STATE], recorded):
            raise ValueError(
                f"episode {episode} of {meta.root}: the replay left the recording at frame {frame} (state "
                f"{obs[OBS_STATE].tolist()} vs recorded {recorded.tolist()}); was it recorded by this code?"
            )
        labels.append(labeller.label())
        obs, *_ = env.step(expert.infer(obs)["actions"][0])
    return labels
