"""Skill labels for a recorded demonstration: the sub-instruction being executed at each of its frames.

    from policies.recording.relabel import skill_labels
    skill_labels("data/demos", 3)   # ["pick up the red cube", ..., "put the red cube in the bin", ...]
    vla-skill-labels dataset=runs/demo/data out=runs/skills/data   # a copy whose frames train on skills

A ``vla-record`` episode is a function of its task, scene seed, goal rotation and the recording's settings
(``meta/recording.json``), so it replays exactly: the replay steps the same expert from the same state and
``sim.skills.SkillLabeller`` names the skill under way at each frame from the simulator's state. Every
replayed state is compared with the recorded one; a replay that leaves the recording is an error naming the
frame, never a silent mislabel. PlaceInBin, PlaceOnTarget and Stack episodes then hold a pick-up skill and a
place skill each, and their pick-up frames teach the same skill as PickUp's.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hydra.core.config_store import ConfigStore
from tqdm import tqdm

from policies import cli, suites
from policies.recording.app import goals_per_scene, job_of
from policies.recording.settings import SETTINGS_PATH, load_settings
from policies.recording.worker import episode_setup
from sim.contract import OBS_STATE
from sim.skills import DONE, SkillLabeller
from vla.data.atomic import write_json_atomic, write_parquet_atomic
from vla.data.layout import INFO_PATH, STATS_PATH, TASK_INDEX, TASKS_PATH, DatasetError
from vla.data.meta import load_meta, read_json
from vla.data.stats import feature_stats, stats_to_json
from vla.data.table import load_table
from vla.data.write_tables import tasks_table

SKILL_LABELS_PATH = "meta/skill_labels.json"  # a relabelled copy's provenance: its source and its skills


def skill_labels(root: str | Path, episode: int) -> list[str]:
    """One skill text per frame of episode ``episode`` of the ``vla-record`` dataset at ``root``."""
    meta = load_meta(root)
    if not 0 <= episode < meta.total_episodes:
        raise ValueError(f"{meta.root} has episodes 0..{meta.total_episodes - 1}, no episode {episode}")
    return _replay(meta, load_table(meta), load_settings(meta.root), episode)


def write_skill_dataset(root: str | Path, out: str | Path, progress: bool = True) -> Path:
    """A copy of the ``vla-record`` dataset at ``root`` in ``out`` whose frames carry skill labels.

    Each frame's ``task_index`` names the skill under way; the frames after the last skill terminated (the
    expert rising with the object, say) keep the last skill's text: they continue it. Pictures and the
    frame cache are hard links to ``root``'s (nothing rewritten in place: every changed file is replaced),
    so the copy costs the replay and a few tables. The copy has no ``meta/recording.json``, so ``vla-record``
    refuses to top it up with task-labelled episodes; ``meta/skill_labels.json`` names its source."""
    meta = load_meta(root)
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists: skill labels are written to a new folder")
    table, stored = load_table(meta), load_settings(meta.root)
    labels = [
        _continued(_replay(meta, table, stored, episode))
        for episode in tqdm(range(meta.total_episodes), desc="skill labels", disable=not progress)
    ]
    tasks = list(dict.fromkeys(text for episode in labels for text in episode))
    number = {text: i for i, text in enumerate(tasks)}
    indices = [np.array([number[text] for text in episode], np.int64) for episode in labels]  # (T_e,) each
    task_index = np.concatenate(indices)  # (N,)
    shutil.copytree(meta.root, out, copy_function=os.link, ignore=shutil.ignore_patterns(".lock"))
    (out / SETTINGS_PATH).unlink()
    for path in sorted((out / "data").rglob("*.parquet")):
        frames = pq.read_table(path)
        rows = frames.column("index").to_numpy()
        write_parquet_atomic(path, _with_column(frames, TASK_INDEX, pa.array(task_index[rows], pa.int64())))
    _rewrite_episodes(out, labels, indices)
    write_parquet_atomic(out / TASKS_PATH, tasks_table(tasks))
    stats = read_json(out / STATS_PATH)
    stats[TASK_INDEX] = stats_to_json({TASK_INDEX: feature_stats(task_index[:, None].astype(np.float64))})[
        TASK_INDEX
    ]
    write_json_atomic(out / STATS_PATH, stats)
    info = read_json(out / INFO_PATH)
    write_json_atomic(out / INFO_PATH, {**info, "total_tasks": len(tasks)})  # the commit point, last
    write_json_atomic(out / SKILL_LABELS_PATH, {"source": str(meta.root), "skills": tasks})
    return out


def _continued(labels: list[str]) -> list[str]:
    """``labels`` with each DONE frame given the text of the skill before it."""
    if labels and labels[0] == DONE:
        raise ValueError("the episode's first frame has no skill under way: was its task done at reset?")
    kept = []
    for text in labels:
        kept.append(kept[-1] if text == DONE else text)
    return kept


def _rewrite_episodes(out: Path, labels: list[list[str]], indices: list[np.ndarray]) -> None:
    """meta/episodes: each row's ``tasks`` and ``stats/task_index/*`` for its new labels."""
    for path in sorted((out / "meta" / "episodes").rglob("*.parquet")):
        rows = pq.read_table(path)
        episodes = rows.column("episode_index").to_pylist()
        texts = [list(dict.fromkeys(labels[e])) for e in episodes]
        rows = _with_column(rows, "tasks", pa.array(texts, rows.schema.field("tasks").type))
        stats = [feature_stats(indices[e][:, None].astype(np.float64)) for e in episodes]
        for name in stats[0]:
            column = f"stats/{TASK_INDEX}/{name}"
            if column in rows.column_names:
                values = [episode[name].tolist() for episode in stats]
                rows = _with_column(rows, column, pa.array(values, rows.schema.field(column).type))
        write_parquet_atomic(path, rows)


def _with_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), table.schema.field(name), column)


def _replay(meta, table, stored: dict, episode: int) -> list[str]:
    row = meta.episodes[episode]
    task = str(row["vla/sim_task"])
    suite = suites.of(task)
    if not suite.skill_labels:
        raise ValueError(f"skill labels exist for our tasks only (sim.skills), not {suite.title}'s {task}")
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
    states = table.state[table.episode_starts[episode] : table.episode_starts[episode + 1]]
    env, expert, options = episode_setup(job, settings)  # the recorder's cached environment
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


@dataclass
class SkillLabelsConfig:
    dataset: str = "data/demos"  # a vla-record dataset (its meta/recording.json replays the episodes)
    out: str = "data/demos-skills"  # a new folder for the skill-labelled copy


ConfigStore.instance().store(name="skill_labels_schema", node=SkillLabelsConfig)


@cli.app("vla-skill-labels", "skill_labels")
def main(config: SkillLabelsConfig) -> None:
    """``vla-skill-labels dataset=ROOT out=OUT``: write the skill-labelled copy of a ``vla-record`` dataset."""
    out = write_skill_dataset(config.dataset, config.out)
    print(f"wrote {out}: {len(load_meta(out).tasks)} skill instructions")


if __name__ == "__main__":
    main()
