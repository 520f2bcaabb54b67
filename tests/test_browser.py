"""The episode browser's pages in a real browser: headless Chromium (Debian's ``chromium``; ``make browser-deps``).

Marked ``browser`` and left out of the default suite; ``make test-browser`` runs it. Chromium loads the pages
from disk, runs their script and takes screenshots, which are checked for what a person would see: the
list's rows, the episode's two videos showing the frame the cursor is at (the synthetic pictures encode their
episode, frame and camera: ``conftest.read_pattern``), the state plots above the action plots, each with its
cursor at that frame's place. The screenshots stay under the test's ``tmp_path``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import read_pattern
from PIL import Image

from vla.data.browse import write_browser

pytestmark = pytest.mark.browser
LENGTHS = [20, 30, 25]
EPISODE, FRAME = 1, 17
WINDOW = (1280, 1400)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("no chromium on PATH: `make browser-deps` installs Debian's package")
    return found


def browse(url: str, tmp_path: Path, screenshot: Path | None = None) -> str:
    """The DOM after the page's script ran (and, with ``screenshot``, a PNG of the window)."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=10000",
    ]  # fmt: skip
    command += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_data(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-(\w+)="([^"]*)"', tag))


@pytest.fixture
def dataset(make_dataset) -> Path:
    return make_dataset(episodes=3, lengths=LENGTHS, image_size=(64, 64))


@pytest.fixture
def pages(dataset, tmp_path) -> Path:
    write_browser(dataset, tmp_path / "pages")
    return tmp_path / "pages"


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2], strict=True))


def test_the_list_and_an_episode_render_with_videos_and_plots_at_the_cursors_frame(pages, tmp_path):
    dom = browse((pages / "index.html").as_uri(), tmp_path)
    rows = re.findall(r'<tr><td><a href="(episode_\d+\.html)">', dom)
    assert rows == [f"episode_{i:06d}.html" for i in range(3)]
    index_png = tmp_path / "index.png"
    browse((pages / "index.html").as_uri(), tmp_path, index_png)
    index = np.asarray(Image.open(index_png).convert("RGB"))
    assert index.shape[:2] == (WINDOW[1], WINDOW[0]) and (index < 200).any(axis=2).sum() > 2000  # text drawn

    url = (pages / f"episode_{EPISODE:06d}.html").as_uri() + f"#frame={FRAME}"
    state = body_data(browse(url, tmp_path))
    assert state["ready"] == "1" and state["videos"] == "2" and state["failed"] == "0"
    assert state["frame"] == str(FRAME) and float(state["time"]) == pytest.approx((FRAME + 0.5) / 10)

    shot = tmp_path / "episode.png"
    browse(url, tmp_path, shot)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    # The videos: the synthetic frames are green (G = 255 - v, v small); two side by side, each showing
    # episode 1's frame 17 of its own camera.
    green = (g > 150) & (r < 110) & (b < 80)
    videos = [run for run in runs(green.sum(axis=0) > 100) if run[1] - run[0] > 100]
    assert len(videos) == 2, videos
    for camera, (left, right) in enumerate(videos):
        top, bottom = max(runs(green[:, left:right].sum(axis=1) > 100), key=lambda run: run[1] - run[0])
        assert read_pattern(image[top:bottom, left:right].astype(np.uint8)) == (EPISODE, FRAME, camera)
    video_bottom = bottom
    # The plots, state (blue #1f77b4) above action (red #d62728), below the videos.
    # (Anti-aliased lines: near those colours. Below the videos, where the slider and the text are not.)
    below = np.arange(image.shape[0])[:, None] > video_bottom + 60
    blue = below & (abs(r - 31) < 20) & (abs(g - 119) < 20) & (abs(b - 180) < 20)
    red = below & (abs(r - 214) < 20) & (abs(g - 39) < 20) & (abs(b - 40) < 20)
    blue_rows, red_rows = np.flatnonzero(blue.sum(axis=1)), np.flatnonzero(red.sum(axis=1))
    assert len(blue_rows) > 100 and len(red_rows) > 50
    assert blue_rows.max() < red_rows.min()
    # Each plot's cursor (a dark vertical line the plot's height) sits at frame 17 of 0..29.
    dark = image.max(axis=2) < 120
    plot_rows = slice(blue_rows.min(), red_rows.max())
    tall = [
        x for x in range(image.shape[1]) if max((e - s for s, e in runs(dark[plot_rows, x])), default=0) > 40
    ]
    cursors = [s for s, _ in runs(np.isin(np.arange(image.shape[1]), tall))]
    assert len(cursors) == 5, cursors  # one per grid column
    y = blue_rows.min() + 30  # inside the first row of plots
    for x in cursors:
        white = np.flatnonzero((image[y] == 255).all(axis=1))
        left, right = white[white < x].max(), white[white > x].min()
        assert (x - left) / (right - left) == pytest.approx(FRAME / (LENGTHS[EPISODE] - 1), abs=0.02)


def test_a_video_that_disappears_is_named_on_the_page(dataset, pages, tmp_path):
    (
        dataset / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    ).unlink()  # after the pages were written: the browser finds it missing
    dom = browse((pages / "episode_000000.html").as_uri(), tmp_path)
    assert body_data(dom)["failed"] == "1" and body_data(dom)["videos"] == "1"
    assert "the browser cannot load or play: videos/observation.images.wrist/chunk-000/file-000.mp4" in dom
