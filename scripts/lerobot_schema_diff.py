"""Schema diff of a LeRobotDataset v3.0 directory against one written by LeRobot itself.

Used by check_lerobot_compat.py (same scratch venv). Compares info.json (keys, value types, feature specs),
the data/episodes/tasks parquet schemas (columns, arrow types, order, schema metadata), the stats.json
features and the video streams (codec, pix_fmt, time base, B-frames, keyframes, faststart). Every difference
is reported with ``report.diff``; whether LeRobot tolerates it is decided by the loading checks, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def read_info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def read_episodes(root: Path) -> list[dict]:
    paths = sorted((root / "meta/episodes").glob("*/*.parquet"))
    # Files may differ in columns (e.g. rows appended by LeRobot lack our vla/* extras): missing ones are null.
    tables = [pq.read_table(p) for p in paths]
    return pa.concat_tables(tables, promote_options="permissive").to_pylist()


def diff_info(ours: dict, ref: dict, report) -> None:
    for key in sorted((set(ours) | set(ref)) - {"features"}):
        a, b = ours.get(key, "<missing>"), ref.get(key, "<missing>")
        if key == "robot_type" and (a is None or b is None):
            continue  # free text; None in the reference
        same_value = a == b or key not in ("codebase_version", "chunks_size", "data_path", "video_path")
        if key not in ours or key not in ref or type(a) is not type(b) or not same_value:
            report.diff(f"info.json {key}", a, b)
    if ours.get("splits") != {"train": f"0:{ours.get('total_episodes')}"}:
        report.diff("info.json splits", ours.get("splits"), "{'train': '0:<total_episodes>'}")
    if list(ours["features"]) != list(ref["features"]):
        report.diff("info.json feature order", list(ours["features"]), list(ref["features"]))
    for key in sorted(set(ours["features"]) | set(ref["features"])):
        a, b = ours["features"].get(key), ref["features"].get(key)
        if a is None or b is None:
            report.diff(f"info.json features.{key}", a, b)
            continue
        for field in sorted((set(a) | set(b)) - {"info"}):
            if a.get(field) != b.get(field):
                report.diff(f"info.json features.{key}.{field}", a.get(field), b.get(field))
        info_a, info_b = a.get("info") or {}, b.get("info") or {}
        for field in sorted(set(info_a) | set(info_b)):
            va, vb = info_a.get(field, "<missing>"), info_b.get(field, "<missing>")
            if va != vb or type(va) is not type(vb):
                report.diff(f"info.json features.{key}.info.{field}", va, vb)


def diff_parquet(label: str, ours: Path, ref: Path, report) -> None:
    a, b = pq.read_schema(ours), pq.read_schema(ref)
    types_a, types_b = {f.name: str(f.type) for f in a}, {f.name: str(f.type) for f in b}
    for name in [n for n in types_b if n not in types_a]:
        report.diff(f"{label} column {name}", "<missing>", types_b[name])
    extra = [n for n in types_a if n not in types_b]
    for name in [n for n in extra if not n.startswith("vla/")]:
        report.diff(f"{label} column {name}", types_a[name], "<absent>")
    if any(n.startswith("vla/") for n in extra):
        report.note(f"{label}: {sum(n.startswith('vla/') for n in extra)} extra vla/* columns (ours only)")
    for name in [n for n in types_a if n in types_b and types_a[n] != types_b[n]]:
        report.diff(f"{label} column {name} type", types_a[name], types_b[name])
    common_a, common_b = [n for n in types_a if n in types_b], [n for n in types_b if n in types_a]
    if common_a != common_b:
        report.diff(f"{label} column order", common_a, common_b)
    meta_a, meta_b = a.metadata or {}, b.metadata or {}
    if set(meta_a) != set(meta_b):
        report.diff(f"{label} schema metadata keys", sorted(meta_a), sorted(meta_b))
    elif b"huggingface" in meta_b:
        features_a = json.loads(meta_a[b"huggingface"])["info"]["features"]
        if features_a != json.loads(meta_b[b"huggingface"])["info"]["features"]:
            report.diff(f"{label} huggingface features", features_a, "<as LeRobot's>")


def video_facts(root: Path, info: dict, key: str) -> dict:
    """Stream facts of the first video file of ``key``, and whether every episode starts on a keyframe."""
    import av

    path = root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
        facts = {
            "codec": stream.codec_context.codec.canonical_name,
            "pix_fmt": stream.pix_fmt,
            "time_base": str(time_base),
            "average_rate": str(stream.average_rate),
            "b_frames": bool(stream.codec_context.has_b_frames),
        }
    keyframes = {pts for pts, key_frame in packets if key_frame}
    gaps = np.diff(sorted(pts for pts, _ in packets))
    facts["frame_step"] = sorted({int(g) for g in gaps})
    starts = [
        round(ep[f"videos/{key}/from_timestamp"] / time_base)
        for ep in read_episodes(root)
        if ep[f"videos/{key}/file_index"] == 0 and ep[f"videos/{key}/chunk_index"] == 0
    ]
    facts["episodes_start_on_keyframe"] = all(s in keyframes for s in starts)
    facts["keyframe_every"] = sorted({int(g) for g in np.diff(sorted(keyframes))} or {0})[:3]
    data = path.read_bytes()
    facts["faststart"] = data.find(b"moov") < data.find(b"mdat")
    return facts


def diff_schema(root: Path, ref: Path, report) -> None:
    ours, theirs = read_info(root), read_info(ref)
    diff_info(ours, theirs, report)
    diff_parquet(
        "data parquet",
        root / "data/chunk-000/file-000.parquet",
        ref / "data/chunk-000/file-000.parquet",
        report,
    )
    episodes = "meta/episodes/chunk-000/file-000.parquet"
    diff_parquet("episodes parquet", root / episodes, ref / episodes, report)
    diff_parquet("tasks.parquet", root / "meta/tasks.parquet", ref / "meta/tasks.parquet", report)
    stats_a = json.loads((root / "meta/stats.json").read_text())
    stats_b = json.loads((ref / "meta/stats.json").read_text())
    if set(stats_a) != set(stats_b):
        report.diff("stats.json features", sorted(stats_a), sorted(stats_b))
    for key, spec in ours["features"].items():
        if spec["dtype"] != "video":
            continue
        facts = video_facts(root, ours, key)
        report.check(
            facts["codec"] == spec["info"]["video.codec"], f"{key} info.json video.codec", facts["codec"]
        )
        report.check(facts["episodes_start_on_keyframe"], f"{key} every episode starts on a keyframe")
        expected = video_facts(ref, theirs, key)
        for field in sorted(facts):
            if facts[field] != expected[field]:
                report.diff(f"{key} video {field}", facts[field], expected[field])
        print(f"NOTE {key} video: {facts}")
