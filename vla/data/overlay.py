"""Frames for people to look at: cameras side by side, with text drawn over them (``vla-dataset view``)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

MIN_HEIGHT = 256  # small camera images are scaled up so the text stays legible


def episode_frames(videos: dict[str, np.ndarray]) -> np.ndarray:
    """Each camera's (T, H, W, 3) frames side by side, scaled to at least MIN_HEIGHT: (T, H', W', 3)."""
    tiles = []
    for frames in videos.values():
        scale = max(1, -(-MIN_HEIGHT // frames.shape[1]))
        tiles.append(frames.repeat(scale, axis=1).repeat(scale, axis=2))
    height = max(tile.shape[1] for tile in tiles)
    padded = [np.pad(t, ((0, 0), (0, height - t.shape[1]), (0, 0), (0, 0))) for t in tiles]
    return np.concatenate(padded, axis=2)


def overlay_text(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` on a dark band along its bottom."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    lines = text.count("\n") + 1
    band = 12 * lines + 6
    draw.rectangle([0, image.height - band, image.width, image.height], fill=(0, 0, 0))
    draw.multiline_text((4, image.height - band + 3), text, fill=(255, 255, 255), spacing=2)
    return np.asarray(image)
