"""vla-dataset view --html: the pages of a dataset, a Hub id and a vla-eval run, as files (tests/test_browser.py
opens them in Chromium)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from conftest import HUB_REPO_ID, TASKS, action_values, state_values

from vla.data.cli import main
from vla.data.meta import load_meta

LENGTHS = [4, 6, 5]


@pytest.fixture
def dataset(make_dataset) -> Path:
    return make_dataset(episodes=3, lengths=LENGTHS)


def episode_data(page: str) -> dict:
    return json.loads(
        re.search(r'<script id="episode-data" type="application/json">(.*?)</script>', page).group(1)
    )


def test_the_pages_list_every_episode_and_show_its_videos_and_plots(dataset, tmp_path, capsys):
    out = tmp_path / "pages"
    assert main(["view", str(dataset), "--html", str(out)]) == 0
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out
    index = (out / "index.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", index)[1:]  # after the header
    assert len(rows) == 3
    for episode, row in enumerate(rows):
        assert f'href="episode_{episode:06d}.html"' in row and TASKS[episode % 2] in row
        assert f"<td>{LENGTHS[episode]} (" in row and f"<td>{episode}</td>" in row  # frames, seed
        assert ("success" if episode % 2 == 0 else "failure") in row  # the recording's vla/success
    meta = load_meta(dataset)
    page = (out / "episode_000001.html").read_text()
    videos = re.findall(r'<video src="([^"]+)" data-start="([\d.]+)" data-end="([\d.]+)"', page)
    assert len(videos) == 2
    for (src, start, end), key in zip(videos, meta.camera_keys, strict=True):
        row = meta.episodes[1]
        assert Path(os.path.normpath(out / unquote(src))) == (meta.video_file(key, 0, 0)).resolve()
        assert float(start) == pytest.approx(row[f"videos/{key}/from_timestamp"], abs=1e-6)
        assert float(end) == pytest.approx(row[f"videos/{key}/to_timestamp"], abs=1e-6)
    assert page.count('class="plot"') == 17 + 7 and "<h2>observation.state</h2>" in page
    data = episode_data(page)
    assert data["fps"] == 10 and data["length"] == LENGTHS[1]
    np.testing.assert_allclose(data["series"][0], state_values(1, LENGTHS[1], 17), atol=1e-4)
    np.testing.assert_allclose(data["series"][1], action_values(1, LENGTHS[1], 7), atol=1e-4)
    assert 'href="episode_000000.html">previous' in page and 'href="episode_000002.html">next' in page
    assert "http" not in page and "http" not in index  # nothing fetched from a network


def test_a_missing_video_is_named_in_its_place(dataset, tmp_path):
    (dataset / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    assert main(["view", str(dataset), "--html", str(tmp_path)]) == 0
    page = (tmp_path / "episode_000002.html").read_text()
    assert "missing video: videos/observation.images.wrist/chunk-000/file-000.mp4" in page
    assert page.count("<video ") == 1  # agentview still plays


def test_a_hub_id_is_browsed_from_the_cache(hub_cache, tmp_path):
    assert main(["view", HUB_REPO_ID, "--html", str(tmp_path / "pages")]) == 0
    assert "datasets--lerobot-fan--tiny_demos" in (tmp_path / "pages/index.html").read_text()


def test_a_vla_eval_run_lists_its_episodes_with_seed_and_success(tmp_path, capsys):
    from policies.evaluation.evaluate import EvalConfig, run
    from policies.seeds import HELDOUT

    run_dir = tmp_path / "eval"
    document = run(EvalConfig(policy="expert", task=["PressButton"], episodes_per_task=2, render_size=[64, 64],
                              tensorboard=False, out=str(run_dir)))  # fmt: skip
    assert main(["view", str(run_dir), "--html", str(tmp_path / "pages")]) == 0
    index = (tmp_path / "pages/index.html").read_text()
    for seed in (HELDOUT.start, HELDOUT.start + 1):
        assert "<td>PressButton</td>" in index and f"<td>{seed}</td>" in index
    assert index.count('class="ok">success') == 2 and "PressButton: 2/2 successes" in index
    page = (tmp_path / "pages/episode_000001.html").read_text()
    assert re.search(r'<video src="\.\./eval/videos/PressButton\.mp4" data-start="0\.000000" data-file', page)
    assert "controls" in page and "no plots" in page
    entry = document["tasks"]["PressButton"]["episode_results"][1]
    assert f"Episode 1: {entry['instruction']}" in page
    (run_dir / "videos/PressButton.mp4").unlink()
    assert main(["view", str(run_dir), "--html", str(tmp_path / "pages")]) == 0
    assert "missing video: videos/PressButton.mp4" in (tmp_path / "pages/episode_000000.html").read_text()
    (run_dir / "results.json").write_text("{")
    assert main(["view", str(run_dir), "--html", str(tmp_path / "pages")]) == 1
    assert "results.json: not a vla-eval results document" in capsys.readouterr().err


def test_html_and_one_episodes_mp4_are_not_mixed(dataset, tmp_path, capsys):
    assert main(["view", str(dataset), "--html", str(tmp_path), "--episode", "2"]) == 1
    assert "--html writes every episode's page" in capsys.readouterr().err
