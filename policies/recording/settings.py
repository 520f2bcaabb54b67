"""The settings a ``vla-record`` dataset was recorded with (``meta/recording.json``), and the top-up check.

Re-running ``vla-record`` on a dataset tops it up. That is only sound when the new episodes are recorded the
way the old ones were: a different noise, label choice, keep rule, base seed, policy, camera set-up or set
of held-out instruction templates would silently mix two kinds of demonstration in one dataset. So the first
run stores those settings and every later run compares its own with them, refusing with each difference
named. A setting stored only since a later version (``LATER``) reads, in an older file, as the value the
older datasets were recorded with.

Not compared: ``episodes_per_task`` (the target of the top-up), ``workers`` (the same episodes either way)
and ``task``: each task's episodes depend only on the task and its seeds, so recording some of the tasks, or
adding new ones, is a top-up like any other. The file lists every task recorded so far, for provenance.

A dataset with episodes but no ``meta/recording.json`` was recorded before the settings were stored: its
settings cannot be checked, so adding episodes to it is refused (record into a new ``out=``); a run with
nothing to add only warns. The file sits in ``meta/`` beside LeRobot's own files; LeRobot reads only the
files it knows, so it does not mind it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import sim
from vla.data.atomic import write_json_atomic
from vla.data.layout import DatasetError
from vla.data.meta import DatasetMeta, read_json

SETTINGS_PATH = "meta/recording.json"
# RecordConfig fields that change what an episode holds or which episodes are kept.
COMPARED = (
    "policy",
    "keep",
    "seed",
    "noise",
    "labels",
    "image_size",
    "cameras",
    "codec",
    "holdout_templates",
    "goals_per_scene",
)
# Settings stored since a later version, with the value the datasets recorded before it had.
LATER = {"holdout_templates": {}, "goals_per_scene": 1}


def settings_of(config) -> dict:
    """The compared settings of a ``RecordConfig``, as JSON stores them."""
    return {
        "policy": config.policy,
        "keep": config.keep,
        "seed": int(config.seed),
        "noise": float(config.noise),
        "labels": config.labels,
        "image_size": [int(n) for n in config.image_size],
        "cameras": [str(camera) for camera in config.cameras],
        "codec": config.codec,
        # Resolved (task -> the template never recorded), so "last" and its spelled-out mapping compare equal.
        "holdout_templates": sim.holdout_templates(config.holdout_templates),
        "goals_per_scene": int(config.goals_per_scene),
    }


def _load(path: Path) -> dict:
    stored = read_json(path)
    if not isinstance(stored, dict) or not isinstance(stored.get("settings"), dict):
        raise DatasetError(path, "expected an object with a 'settings' object")
    stored["settings"] = {**LATER, **stored["settings"]}
    missing = [name for name in COMPARED if name not in stored["settings"]]
    if missing:
        raise DatasetError(path, f"missing settings {missing}")
    if not isinstance(stored.get("tasks"), list):
        raise DatasetError(path, "expected a 'tasks' list")
    return stored


def load_settings(root: str | Path) -> dict:
    """The settings a dataset was recorded with (``SETTINGS_PATH``), or ``DatasetError`` when it has none."""
    path = Path(root) / SETTINGS_PATH
    if not path.exists():
        raise DatasetError(
            Path(root), f"no {SETTINGS_PATH}: it was recorded before vla-record stored its settings"
        )
    return _load(path)["settings"]


def _differences(stored: dict, wanted: dict) -> list[str]:
    return [
        f"{name} {stored[name]!r} (recorded) vs {wanted[name]!r} (now)"
        for name in COMPARED
        if stored[name] != wanted[name]
    ]


def match_settings(meta: DatasetMeta, config, adding: bool) -> None:
    """Refuse ``config`` unless it records the dataset ``meta`` the way it was recorded; store its settings.

    ``adding``: whether this run will add episodes (a legacy dataset without stored settings is refused
    then, and only warned about otherwise). Call it with the dataset's writer open, so no other process
    writes the file meanwhile.
    """
    path = meta.root / SETTINGS_PATH
    wanted = settings_of(config)
    if not path.exists():
        if meta.total_episodes == 0:  # a new dataset (or one whose first run died before its first episode)
            write_json_atomic(path, {"settings": wanted, "tasks": list(config.task)})
        elif adding:
            raise DatasetError(
                meta.root,
                f"has {meta.total_episodes} episodes but no {SETTINGS_PATH}: it was recorded before "
                "vla-record stored its settings, so new episodes cannot be checked to match the old ones; "
                "record into a new out= directory",
            )
        else:
            warnings.warn(f"{meta.root}: no {SETTINGS_PATH}; its settings cannot be checked", stacklevel=2)
        return
    stored = _load(path)
    differences = _differences(stored["settings"], wanted)
    if differences:
        raise DatasetError(
            path,
            f"this dataset was recorded with other settings: {'; '.join(differences)}. Topping it up would "
            "mix two kinds of episode: record into a new out= directory, or re-run with the recorded settings",
        )
    new_tasks = [task for task in config.task if task not in stored["tasks"]]
    if adding and new_tasks:
        write_json_atomic(path, {**stored, "tasks": stored["tasks"] + new_tasks})
