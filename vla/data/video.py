"""MP4 video for LeRobotDataset v3.0: encode an episode, append episodes by remuxing, decode frames by time.

Codec choice. LeRobot writes AV1 (libsvtav1, crf 30); its loaders decode H.264 as well. We default to H.264
(libx264) because it decodes several times faster on CPU, where training data loaders run. Settings:

- yuv420p: the pixel format every decoder handles (chroma at half resolution, so H and W must be even);
- a keyframe every 2 frames (g=2) and no B-frames: a random frame costs at most two decodes, and decode order
  equals presentation order, so packets from separately encoded episodes can be concatenated as they are;
- CRF 23 for libx264 (the x264 default; on our flat-shaded renders and smooth test patterns the mean absolute
  error is about 1 grey level), CRF 30 for libsvtav1 (LeRobot's setting); ``crf`` overrides either;
- time base 1/fps in the encoder, so frame i has the presentation time i/fps exactly (the MP4 muxer scales
  the time base up to an integer multiple, which keeps times exact).

``append_video`` concatenates episodes without re-encoding: it copies the packets of the new episode after
those of the file, shifted by the file's duration. That needs both files to come from the same encoder with
the same settings and size (their codec parameter sets must be identical), which it checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vla.data.atomic import atomic_path
from vla.data.layout import DatasetError
from vla.data.stats import pixel_histogram

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = {"libx264": 23, "libsvtav1": 30}
GOP_SIZE = 2
PIX_FMT = "yuv420p"
# Encoder -> codec name, as the stream reports it (and as info.json's "video.codec" holds it).
CODEC_NAMES = {"libx264": "h264", "libsvtav1": "av1"}
ENCODERS = {name: encoder for encoder, name in CODEC_NAMES.items()}
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobot's tolerance between a requested and a decoded frame time


@dataclass(frozen=True)
class EncodedVideo:
    """One episode of one camera, encoded to ``path`` and ready to be appended to a dataset video file."""

    path: Path
    num_frames: int
    height: int
    width: int
    fps: float
    codec: str  # codec name, e.g. "h264"
    histogram: np.ndarray  # (3, 256) int64: per RGB channel, pixel counts of each value in the raw frames


def frame_rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a uint8 numpy array, got {getattr(frames, 'dtype', type(frames))}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T > 0, got {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frame height and width must be even for {PIX_FMT}, got {frames.shape[1:3]}")


def encode_video(
    frames: np.ndarray, path: str | Path, fps: float, codec: str = DEFAULT_CODEC, crf: int | None = None
) -> EncodedVideo:
    """Encode RGB ``frames`` (T, H, W, 3) uint8 to the MP4 ``path``; frame i is presented at i / fps."""
    _check_frames(frames)
    if codec not in CODEC_NAMES:
        raise ValueError(f"codec must be one of {sorted(CODEC_NAMES)}, got {codec!r}")
    if codec not in av.codecs_available:
        raise ValueError(f"this PyAV build has no {codec} encoder")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    num_frames, height, width, _ = frames.shape
    rate = frame_rate(fps)
    options = {"g": str(GOP_SIZE), "crf": str(DEFAULT_CRF[codec] if crf is None else crf)}
    if codec == "libx264":
        options.update({"bf": "0", "preset": "medium"})
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
        stream.codec_context.time_base = 1 / rate
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return EncodedVideo(
        path, num_frames, height, width, float(fps), CODEC_NAMES[codec], pixel_histogram(frames)
    )


def _packets(container: av.container.InputContainer) -> list[av.Packet]:
    # The demuxer ends a stream with an empty flush packet (no data, no pts); it is not a frame.
    return [p for p in container.demux(container.streams.video[0]) if p.size and p.pts is not None]


def _end_pts(packets: list[av.Packet]) -> int:
    return max(p.pts + p.duration for p in packets) if packets else 0


def _remux(out_path: Path, template: av.video.stream.VideoStream, parts) -> None:
    """Write ``parts`` [(packets, pts_offset)] as one video stream shaped like ``template``."""
    # faststart: the index at the front, as LeRobot writes, so players can stream the file.
    with av.open(str(out_path), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(template, opaque=True)
        for packets, offset in parts:
            for packet in packets:
                packet.pts += offset
                packet.dts += offset
                packet.stream = stream
                out.mux(packet)


def _same_encoding(a: av.video.stream.VideoStream, b: av.video.stream.VideoStream) -> str | None:
    """Why packets of stream b cannot follow those of stream a, or None when they can."""
    checks = {
        "codec": (a.codec_context.name, b.codec_context.name),
        "size": ((a.width, a.height), (b.width, b.height)),
        "time base": (a.time_base, b.time_base),
        "codec parameters (extradata)": (
            bytes(a.codec_context.extradata or b""),
            bytes(b.codec_context.extradata or b""),
        ),
    }
    for what, (x, y) in checks.items():
        if x != y:
            return f"{what} differ" if what.startswith("codec parameters") else f"{what} differ: {x} vs {y}"
    return None


def check_appendable(dst: str | Path, src: str | Path) -> None:
    """Raise a DatasetError naming ``dst`` if ``src``'s packets cannot follow ``dst``'s (missing dst is fine)."""
    dst, src = Path(dst), Path(src)
    if not src.is_file():
        raise DatasetError(src, "video file not found")
    if not dst.exists():
        return
    with av.open(str(dst)) as dst_container, av.open(str(src)) as src_container:
        problem = _same_encoding(dst_container.streams.video[0], src_container.streams.video[0])
    if problem:
        raise DatasetError(
            dst, f"cannot append {src}: {problem} (encode with this dataset's codec and settings)"
        )


def append_video(dst: str | Path, src: str | Path) -> float:
    """Append the video ``src`` to the end of ``dst`` (created when missing) without re-encoding.

    Returns the time in ``dst`` at which ``src``'s first frame now sits (its ``from_timestamp``).
    ``dst`` is replaced atomically: a crash leaves it as it was.
    """
    dst, src = Path(dst), Path(src)
    check_appendable(dst, src)
    with av.open(str(src)) as src_container:
        src_stream = src_container.streams.video[0]
        src_packets = _packets(src_container)
        if not dst.exists():
            with atomic_path(dst) as tmp:
                _remux(tmp, src_stream, [(src_packets, 0)])
            return 0.0
        with av.open(str(dst)) as dst_container:
            dst_stream = dst_container.streams.video[0]
            dst_packets = _packets(dst_container)
            offset = _end_pts(dst_packets)
            with atomic_path(dst) as tmp:
                _remux(tmp, dst_stream, [(dst_packets, 0), (src_packets, offset)])
            return float(offset * dst_stream.time_base)


def _require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "video file not found")
    return path


def truncate_video(path: str | Path, end_s: float) -> None:
    """Cut ``path`` back to the frames presented before ``end_s`` (remux, atomic); delete it if none remain."""
    path = _require_file(path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cut = end_s - TIMESTAMP_TOLERANCE_S
        packets = [p for p in _packets(container) if p.pts * stream.time_base < cut]
        if not packets:
            path.unlink()
            return
        with atomic_path(path) as tmp:
            _remux(tmp, stream, [(packets, 0)])


def video_duration(path: str | Path) -> float:
    """Seconds from the first frame's start to the last frame's end (frames x 1/fps for our files)."""
    with av.open(str(_require_file(path))) as container:
        stream = container.streams.video[0]
        return float(_end_pts(_packets(container)) * stream.time_base)


def decode_frames(path: str | Path, timestamps) -> np.ndarray:
    """The RGB frames (N, H, W, 3) uint8 presented at ``timestamps`` (seconds), in the order asked.

    A timestamp with no frame within 1e-4 s is a ``DatasetError`` naming the file and the time.
    """
    path = _require_file(path)
    wanted = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        order = np.argsort(wanted, kind="stable")
        frames = None  # iterator over decoded frames, positioned after the last one taken
        last_time, image = -np.inf, None
        for i in order:
            target = wanted[i]
            if abs(target - last_time) <= TIMESTAMP_TOLERANCE_S:  # the same frame asked again
                found[i] = image
                continue
            # Sorted targets usually lie just ahead of the decoder: keep decoding; else seek to a keyframe.
            if frames is None or target < last_time - TIMESTAMP_TOLERANCE_S or target > last_time + 1.0:
                container.seek(max(int(target / stream.time_base), 0), stream=stream, backward=True)
                frames = container.decode(stream)
            image, last_time = _frame_at(frames, target, path)
            found[i] = image
    return (
        np.stack([found[i] for i in range(len(wanted))]) if len(wanted) else np.zeros((0, 0, 0, 3), np.uint8)
    )


def _frame_at(frames, target: float, path: Path) -> tuple[np.ndarray, float]:
    for frame in frames:
        time = float(frame.pts * frame.time_base)
        if time < target - TIMESTAMP_TOLERANCE_S:
            continue
        if time > target + TIMESTAMP_TOLERANCE_S:
            break
        return frame.to_ndarray(format="rgb24"), time
    raise DatasetError(path, f"no frame within {TIMESTAMP_TOLERANCE_S} s of timestamp {target:.6f}")


def round_trip(image: np.ndarray, codec: str = DEFAULT_CODEC, crf: int | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 image after encoding with the recorder's settings and decoding again: what a frame
    of a recorded dataset looks like to training (as a keyframe; in recordings every other frame is one)."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "frame.mp4"
        encode_video(image[None], path, fps=10.0, codec=codec, crf=crf)
        return decode_frames(path, [0.0])[0]
