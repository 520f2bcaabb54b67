"""Hub-style dataset ids (``user/name``) resolved to a Hugging Face cache the test builds; never the network.

The cache (conftest's ``hub_cache``) has the layout huggingface_hub reads; ``HF_HUB_OFFLINE`` is on, so
``snapshot_download`` only looks there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HUB_REPO_ID as REPO_ID
from conftest import HUB_REVISION as REVISION

from vla.data.cli import main
from vla.data.dataset import VLADataset
from vla.data.hub import looks_like_repo_id, resolve_dataset
from vla.data.layout import DatasetError
from vla.data.meta import load_meta

ROOT = Path(__file__).resolve().parents[1]


def test_an_id_resolves_to_its_cached_snapshot_for_every_reader(hub_cache, capsys):
    snapshot = hub_cache / f"datasets--{REPO_ID.replace('/', '--')}" / "snapshots" / REVISION
    assert resolve_dataset(REPO_ID) == snapshot
    assert load_meta(REPO_ID).root == snapshot and load_meta(REPO_ID).total_episodes == 3
    samples = VLADataset(REPO_ID, chunk_size=2)
    assert samples.root == snapshot and len(samples) == samples.meta.total_frames
    assert main(["info", REPO_ID]) == 0
    assert f"{snapshot}: LeRobotDataset v3.0" in capsys.readouterr().out


def test_vla_dataset_resolves_an_id_from_the_environments_cache(hub_cache):
    """The command as a user runs it: HF_HUB_CACHE and HF_HUB_OFFLINE from the environment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "vla.data.cli", "validate", REPO_ID],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "OK: 3 episodes" in done.stdout


def test_a_local_directory_named_like_an_id_wins_over_the_cache(hub_cache, make_dataset):
    local = make_dataset(root=hub_cache.parent / REPO_ID, episodes=2)
    assert resolve_dataset(REPO_ID) == Path(REPO_ID)
    assert load_meta(REPO_ID).total_episodes == 2 and local.is_dir()


def test_an_id_in_neither_place_names_both_places_in_one_line(hub_cache, capsys):
    with pytest.raises(DatasetError) as error:
        resolve_dataset("someone/absent")
    message = str(error.value)
    assert "\n" not in message
    assert str(hub_cache.parent / "someone" / "absent") in message  # the directory looked at
    assert str(hub_cache / "datasets--someone--absent") in message  # the cache folder looked at
    assert main(["info", "someone/absent"]) == 1
    assert "datasets--someone--absent" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, shaped",
    [("user/name", True), ("a.b/c-d_e", True), ("/abs/x", False), ("./x/y", False), ("a/b/c", False),
     ("name", False), ("x/..", False)],
)  # fmt: skip
def test_only_user_slash_name_is_taken_for_an_id(name, shaped):
    assert looks_like_repo_id(name) is shaped


def test_a_missing_path_that_is_no_id_is_a_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="dataset directory not found"):
        resolve_dataset(tmp_path / "nowhere" / "deeper")
