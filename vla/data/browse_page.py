"""The HTML of ``vla.data.browse``'s pages: the episode list and an episode's videos and plots.

Self-contained pages: styles and script inline, plots as inline SVG drawn here (one small plot per state
and action dimension, its own vertical scale), no network. The episode page's script keeps one frame
number: the lead video's time sets it while playing; the slider, a click on a plot and the arrow keys set it
and seek every video there; ``episode_<N>.html#frame=12`` opens at frame 12. Its state is mirrored in
``document.body.dataset`` (``frame``; ``time``: the lead video's position in the episode after its last seek;
``videos``: how many loaded; ``failed``) so a headless browser can read what happened.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np


@dataclass(frozen=True)
class Video:
    camera: str
    path: Path  # the file, which may be missing
    start: float  # s into the file where the episode starts
    end: float | None  # s where it ends; None: the file's end
    shown_as: str  # how the page names the file (relative to the dataset or run directory)


@dataclass(frozen=True)
class Series:
    name: str  # e.g. "observation.state"
    labels: list[str]  # one per dimension
    values: np.ndarray  # (T, D) float


@dataclass(frozen=True)
class EpisodeView:
    index: int
    task: str | None  # the simulator task, where the dataset or run says
    instruction: str
    length: int  # frames (steps)
    fps: float
    success: bool | None  # None: not judged
    seed: int | None
    videos: list[Video]
    series: list[Series]  # empty for an evaluation's episodes
    note: str = ""  # what the page should say about its video


PLOT_W, PLOT_H = 300, 64  # SVG user units of one plot
COLOURS = {"observation.state": "#1f77b4", "action": "#d62728"}  # state blue, action red
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 18px 0 6px; }
.summary { color: #555; margin: 0 0 12px; } nav { margin-bottom: 8px; }
table { border-collapse: collapse; } th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f3f3f3; } tr.hidden { display: none; }
.ok { color: #1a7f37; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
.videos { display: flex; flex-wrap: wrap; gap: 12px; }
.videos figure { margin: 0; } video { width: 256px; background: #000; image-rendering: pixelated; }
.missing { width: 256px; height: 144px; display: flex; align-items: center; justify-content: center;
  text-align: center; padding: 8px; box-sizing: border-box; background: #fdecea; color: #8a1c1c;
  border: 1px solid #f5c2c0; font-size: 12px; word-break: break-all; }
.controls { margin: 10px 0; display: flex; gap: 12px; align-items: center; }
.controls input[type=range] { width: 420px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 8px 14px; }
.plot { margin: 0; cursor: crosshair; } .plot figcaption { font-size: 12px; display: flex;
  justify-content: space-between; } .plot svg { width: 100%; height: 64px; background: #fafafa;
  border: 1px solid #e4e4e4; } .plot polyline { fill: none; stroke-width: 1.5; }
.plot .cursor { stroke: #111; stroke-width: 1; } .range { font-size: 11px; color: #777; }
.note { color: #555; font-size: 13px; }
"""
INDEX_SCRIPT = """
document.getElementById("filter").addEventListener("input", (event) => {
  const words = event.target.value.toLowerCase();
  for (const row of document.querySelectorAll("tbody tr")) {
    row.classList.toggle("hidden", !row.textContent.toLowerCase().includes(words));
  }
});
"""
EPISODE_SCRIPT = r"""
(() => {
  const data = JSON.parse(document.getElementById("episode-data").textContent);
  const body = document.body.dataset;
  const videos = Array.from(document.querySelectorAll("video"));
  const lead = videos[0] || null;
  const last = Math.max(0, data.length - 1);
  const slider = document.getElementById("slider");
  const label = document.getElementById("frame-label");
  let frame = 0, loaded = 0, failed = 0;
  body.videos = 0; body.failed = 0;
  const start = (v) => Number(v.dataset.start || 0);
  const end = (v) => (v.dataset.end ? Number(v.dataset.end) : Infinity);
  const timeOf = (v, f) => start(v) + (f + 0.5) / data.fps;
  function show(f) {
    frame = Math.max(0, Math.min(last, f | 0));
    const x = last > 0 ? (frame / last) * data.width : 0;
    for (const line of document.querySelectorAll(".cursor")) { line.setAttribute("x1", x); line.setAttribute("x2", x); }
    for (const plot of document.querySelectorAll(".plot")) {
      const value = data.series[plot.dataset.series][frame][plot.dataset.dim];
      plot.querySelector(".value").textContent = value.toFixed(3);
    }
    if (slider) slider.value = frame;
    label.textContent = "frame " + frame + " / " + last + ", t = " + (frame / data.fps).toFixed(2) + " s";
    body.frame = frame;
  }
  function seek(f) { show(f); for (const v of videos) if (v.dataset.end) v.currentTime = timeOf(v, frame); }
  function follow() {
    if (!lead || !lead.dataset.end) return;
    if (lead.currentTime >= end(lead)) { for (const v of videos) v.pause(); }
    show(Math.floor((lead.currentTime - start(lead)) * data.fps));
    if (!lead.paused) requestAnimationFrame(follow);
  }
  function fail(v, why) {
    failed += 1; body.failed = failed;
    const box = document.createElement("div");
    box.className = "missing";
    box.textContent = why + ": " + v.dataset.file;
    v.replaceWith(box);
  }
  for (const v of videos) {
    v.addEventListener("loadedmetadata", () => { loaded += 1; body.videos = loaded; if (v.dataset.end) v.currentTime = timeOf(v, frame); });
    v.addEventListener("error", () => fail(v, "the browser cannot load or play"));
    if (v.error) fail(v, "the browser cannot load or play");
  }
  if (lead) {
    lead.addEventListener("play", () => {
      if (lead.dataset.end && lead.currentTime >= end(lead) - 0.5 / data.fps) lead.currentTime = timeOf(lead, 0);
      for (const v of videos) if (v !== lead) { v.currentTime = lead.currentTime - start(lead) + start(v); v.play(); }
      requestAnimationFrame(follow);
    });
    lead.addEventListener("pause", () => { for (const v of videos) if (v !== lead) v.pause(); });
    lead.addEventListener("seeked", () => {
      body.time = (lead.currentTime - start(lead)).toFixed(3);
      if (lead.paused) follow();
    });
  }
  const play = document.getElementById("play");
  if (play) play.addEventListener("click", () => { if (lead) (lead.paused ? lead.play() : lead.pause()); });
  if (slider) slider.addEventListener("input", () => seek(Number(slider.value)));
  for (const svg of document.querySelectorAll(".plot svg")) {
    svg.addEventListener("click", (event) => {
      const box = svg.getBoundingClientRect();
      seek(Math.round(((event.clientX - box.left) / box.width) * last));
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight") seek(frame + 1);
    if (event.key === "ArrowLeft") seek(frame - 1);
    if (event.key === " " && lead) { event.preventDefault(); lead.paused ? lead.play() : lead.pause(); }
  });
  const wanted = /frame=(\d+)/.exec(location.hash);  // episode_N.html#frame=12 opens at frame 12
  seek(wanted ? Number(wanted[1]) : 0);
  body.ready = "1";
})();
"""


def page_name(index: int) -> str:
    return f"episode_{index:06d}.html"


def _page(title: str, body: str, script: str, data: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n{data}"
        f"<script>{script}</script>\n</body></html>\n"
    )


def _verdict(success: bool | None) -> str:
    if success is None:
        return "-"
    return '<span class="ok">success</span>' if success else '<span class="fail">failure</span>'


def index_page(title: str, summary: list[str], episodes: list[EpisodeView]) -> str:
    rows = []
    for e in episodes:
        cells = [
            f'<a href="{page_name(e.index)}">{e.index}</a>',
            html.escape(e.task or "-"),
            html.escape(e.instruction),
            f"{e.length} ({e.length / e.fps:.1f} s)",
            "-" if e.seed is None else str(e.seed),
            _verdict(e.success),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(
        f"<th>{name}</th>" for name in ("episode", "task", "instruction", "frames", "seed", "outcome")
    )
    body = (
        f"<h1>{html.escape(title)}</h1>\n"
        + "".join(f'<p class="summary">{html.escape(line)}</p>\n' for line in summary)
        + '<p><input id="filter" type="search" placeholder="filter: task, instruction, success ..." size="40"></p>\n'
        + f'<table id="episodes"><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )
    return _page(title, body, INDEX_SCRIPT)


def _video(video: Video, out: Path) -> str:
    caption = f"<figcaption>{html.escape(video.camera)}</figcaption>"
    if not video.path.is_file():
        missing = f'<div class="missing" title="{html.escape(str(video.path))}">missing video: {html.escape(video.shown_as)}</div>'
        return f"<figure>{missing}{caption}</figure>"
    href = quote(Path(os.path.relpath(video.path.resolve(), out.resolve())).as_posix())
    span = f'data-start="{video.start:.6f}"' + (
        f' data-end="{video.end:.6f}"' if video.end is not None else ""
    )
    element = (
        f'<video src="{href}" {span} data-file="{html.escape(video.shown_as)}" preload="auto" muted '
        f"playsinline{'' if video.end is not None else ' controls'}></video>"
    )
    return f"<figure>{element}{caption}</figure>"


def _polyline(values: np.ndarray, low: float, high: float) -> str:
    span = high - low if high > low else 1.0
    xs = np.linspace(0, PLOT_W, len(values)) if len(values) > 1 else np.zeros(1)
    ys = PLOT_H - 4 - (values - low) / span * (PLOT_H - 8)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def _plots(episode: EpisodeView) -> str:
    parts = []
    for s, series in enumerate(episode.series):
        colour = COLOURS.get(series.name, "#444")
        figures = []
        for d, label in enumerate(series.labels):
            values = series.values[:, d]
            low, high = float(values.min()), float(values.max())
            figures.append(
                f'<figure class="plot" data-series="{s}" data-dim="{d}"><figcaption><span>{html.escape(label)}</span>'
                f'<span class="value"></span></figcaption><svg viewBox="0 0 {PLOT_W} {PLOT_H}" preserveAspectRatio="none">'
                f'<polyline stroke="{colour}" vector-effect="non-scaling-stroke" points="{_polyline(values, low, high)}"/>'
                f'<line class="cursor" x1="0" x2="0" y1="0" y2="{PLOT_H}" vector-effect="non-scaling-stroke"/></svg>'
                f'<div class="range">{low:.4g} .. {high:.4g}</div></figure>'
            )
        parts.append(f'<h2>{html.escape(series.name)}</h2>\n<div class="grid">{"".join(figures)}</div>')
    return "\n".join(parts)


def episode_page(title: str, episode: EpisodeView, out: Path, before: int | None, after: int | None) -> str:
    links = ['<a href="index.html">all episodes</a>']
    if before is not None:
        links.append(f'<a href="{page_name(before)}">previous</a>')
    if after is not None:
        links.append(f'<a href="{page_name(after)}">next</a>')
    facts = [
        f"task {episode.task}" if episode.task else None,
        None if episode.seed is None else f"seed {episode.seed}",
        f"{episode.length} frames at {episode.fps:g} fps",
    ]
    facts = " · ".join(fact for fact in facts if fact)
    videos = "".join(_video(video, out) for video in episode.videos) or '<p class="note">no video</p>'
    controls = (
        f'<div class="controls"><button id="play">play / pause</button><input id="slider" type="range" min="0" '
        f'max="{max(episode.length - 1, 0)}" value="0"><span id="frame-label"></span></div>'
        if episode.series
        else '<div class="controls"><span id="frame-label"></span></div>'
    )
    note = f'<p class="note">{html.escape(episode.note)}</p>' if episode.note else ""
    body = (
        f"<nav>{' · '.join(links)} · {html.escape(title)}</nav>\n"
        f"<h1>Episode {episode.index}: {html.escape(episode.instruction)}</h1>\n"
        f'<p class="summary">{html.escape(facts)} · {_verdict(episode.success)}</p>\n'
        f'<section class="videos">{videos}</section>\n{note}{controls}\n{_plots(episode)}'
    )
    data = {
        "fps": episode.fps,
        "length": episode.length,
        "width": PLOT_W,
        "series": [np.round(series.values, 4).tolist() for series in episode.series],
    }
    script = json.dumps(data).replace("</", "<\\/")
    return _page(
        f"{title}: episode {episode.index}",
        body,
        EPISODE_SCRIPT,
        f'<script id="episode-data" type="application/json">{script}</script>\n',
    )
