"""MP4 writing for rollout videos, and a caption strip to say what a clip shows.

Videos are H.264 (libx264, CRF 23: the x264 default, visually near-lossless for these flat-shaded renders at
a few kB per second) in yuv420p, the pixel format every browser and player decodes. PyAV wheels built
without libx264 fall back to MPEG-4 Part 2 at a fixed bits-per-pixel rate, which all players also decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont  # pillow comes with tensorboard, a declared dependency

CRF = 23
# MPEG-4 fallback: bits per pixel per frame. 0.15 gives a quality close to CRF 23 H.264 on our scenes.
MPEG4_BITS_PER_PIXEL = 0.15


def video_codec() -> str:
    """The encoder write_mp4 uses: libx264 where the PyAV wheel has it, else mpeg4."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _as_frames(frames) -> np.ndarray:
    array = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
    if array.size == 0:
        raise ValueError("write_mp4 needs at least one frame, got none")
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got dtype {array.dtype}")
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {array.shape}")
    _, height, width, _ = array.shape
    if height % 2 or width % 2:
        # yuv420p stores chroma at half resolution in both directions, so encoders require even sizes.
        raise ValueError(f"frame height and width must be even for yuv420p, got {height}x{width}")
    return array


def write_mp4(path: str | Path, frames, fps: float) -> Path:
    """Encode ``frames`` (uint8 (T, H, W, 3) RGB, or a sequence of (H, W, 3)) to an MP4 at ``fps``."""
    array = _as_frames(frames)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = array.shape
    codec = video_codec()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(CRF)}
        else:
            stream.bit_rate = int(MPEG4_BITS_PER_PIXEL * width * height * fps)
        for image in array:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return path


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode an MP4 into uint8 (T, H, W, 3) RGB frames (for tests and inspection)."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def caption(frames: Sequence[np.ndarray], text: str, success: bool | None = None) -> np.ndarray:
    """Frames with ``text`` on a strip over their bottom edge: green for success, red for failure."""
    array = _as_frames(frames)
    _, height, width, _ = array.shape
    strip_height = max(12, height // 12) // 2 * 2
    colour = {True: (24, 120, 48), False: (150, 30, 30), None: (40, 40, 40)}[success]
    mark = {True: "[success] ", False: "[failure] ", None: ""}[success]
    strip = Image.new("RGB", (width, strip_height), colour)
    font = _fitting_font(mark + text, width - 8, strip_height * 3 // 4)
    ImageDraw.Draw(strip).text(
        (4, strip_height // 2), mark + text, fill=(255, 255, 255), font=font, anchor="lm"
    )
    out = array.copy()
    out[:, height - strip_height :] = np.asarray(strip)
    return out


def _fitting_font(text: str, width: int, size: int) -> ImageFont.ImageFont:
    """The default font at ``size``, shrunk (down to 8 px; longer text is then cut off) until ``text`` fits."""
    font = ImageFont.load_default(size=size)
    while size > 8 and font.getlength(text) > width:
        size -= 1
        font = ImageFont.load_default(size=size)
    return font
