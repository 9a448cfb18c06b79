"""Attribution heatmaps over thumbnails, as PNG data URIs (offline pages embed them).

The image is drawn in grey; positive attribution (towards the class) in red and negative
in blue on top, with opacity proportional to ``|attribution| / max |attribution|`` of that
image, so the strongest evidence of each image is fully coloured.
"""

from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
from PIL import Image

# Table columns that are the pixels of a square image (builtin:digits: pixel_0..pixel_63).
_PIXEL = re.compile(r"^(pixel|px|p)_?\d+$", re.IGNORECASE)
SCALE = 4  # thumbnails of 8x8 digits are enlarged 4x (nearest neighbour) to be legible


def pixel_side(names: list[str]) -> int | None:
    """The side of the square image a table's columns form, or None."""
    side = math.isqrt(len(names))
    if side >= 4 and side * side == len(names) and all(_PIXEL.match(n) for n in names):
        return side
    return None


def _uri(pixels: np.ndarray) -> str:
    image = Image.fromarray(pixels)
    if max(pixels.shape[:2]) < 32:
        image = image.resize((pixels.shape[1] * SCALE, pixels.shape[0] * SCALE), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grey(picture: np.ndarray) -> np.ndarray:
    values = picture.mean(-1) if picture.ndim == 3 else picture
    low, high = float(np.min(values)), float(np.max(values))
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return scaled.astype(np.float64)


def image_uri(picture: np.ndarray) -> str:
    """The picture in grey (``[H, W]`` or ``[H, W, 3]``, any range)."""
    return _uri((255 * _grey(picture)).round().astype(np.uint8))


def heatmap_uri(picture: np.ndarray, attribution: np.ndarray) -> str:
    """The picture with its attribution (same ``H, W``; channels summed) overlaid."""
    grey = _grey(picture)
    values = attribution.sum(-1) if attribution.ndim == 3 else attribution
    peak = float(np.max(np.abs(values))) or 1.0
    alpha = np.clip(np.abs(values) / peak, 0, 1)[..., None]
    colour = np.where(values[..., None] >= 0, np.array([214, 39, 40]), np.array([31, 119, 180]))
    base = np.repeat((255 * (0.35 + 0.65 * grey))[..., None], 3, axis=-1)
    mixed = (1 - alpha) * base + alpha * colour
    return _uri(mixed.round().clip(0, 255).astype(np.uint8))
