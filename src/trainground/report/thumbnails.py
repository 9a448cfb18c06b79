"""Small inline PNG thumbnails of the samples in the table, for image data.

Image-like data is recognised from the data schema stored with the model, never guessed
from values: an image folder (``kind: image``), or a table whose feature columns are all
named like pixels (``pixel_0``, ``px12``, ...) and whose count is a perfect square
(scikit-learn's 8x8 digits are 64 such columns). A table of 64 sensor readings is not an
image, which a square count alone would wrongly suggest.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

PIXEL_NAME = re.compile(r"^(pixel|pix|px|p)[_\-.]?\d+$", re.IGNORECASE)
THUMB_SIDE = 32  # pixels of the longest side of a folder image's thumbnail (the page scales it)


def image_shape(schema: dict[str, Any] | None) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` when the schema describes image-like data, else None."""
    if not schema:
        return None
    if schema.get("kind") == "image":
        channels = 1 if schema.get("mode") == "L" else 3
        return channels, int(schema["height"]), int(schema["width"])
    columns = list(schema.get("columns") or [])
    side = math.isqrt(len(columns))
    if side >= 4 and side * side == len(columns) and not schema.get("categories") \
            and all(PIXEL_NAME.match(str(c)) for c in columns):
        return 1, side, side
    return None


def png_data_uri(pixels: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a ``[H, W]`` or ``[H, W, 3]`` uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def table_thumbnails(features: np.ndarray, side: int) -> list[str]:
    """Thumbnails of table rows holding ``side x side`` pixels each, ink dark on white.

    The grey scale is shared by all rows (the rows' overall min and max), so a faint
    sample looks faint; high values are drawn dark, as ink on paper.
    """
    values = np.asarray(features, dtype=np.float64).reshape(len(features), side, side)
    low, high = np.nanmin(values), np.nanmax(values)
    scale = (values - low) / (high - low) if high > low else np.zeros_like(values)
    grey = (255 * (1.0 - np.nan_to_num(scale, nan=0.0))).round().astype(np.uint8)
    return [png_data_uri(g) for g in grey]


def folder_files(root: Path) -> list[Path]:
    """The image files of a class-folder dataset in the order ``load_image_folder`` indexes them."""
    from trainground.data.images import IMAGE_EXTENSIONS, _image_files

    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    return [f for d in class_dirs for f in _image_files(d, IMAGE_EXTENSIONS)]


def file_thumbnail(file: Path, channels: int) -> str:
    with Image.open(file) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        image.thumbnail((THUMB_SIDE, THUMB_SIDE))
        return png_data_uri(np.asarray(image))


def sample_thumbnails(config: dict[str, Any] | None, schema: dict[str, Any] | None,
                      indices: Sequence[int]) -> tuple[dict[int, str], str | None]:
    """Thumbnails of the samples at input rows ``indices``, read from the run's data source.

    Only those rows are decoded (an image folder's other files are never opened).

    Args:
        config: the run's ``config.yaml`` (``data.source``, ``data.target``).
        schema: the data schema stored with the model.
        indices: input row indices (the ``index`` column of ``sample_issues.csv``).

    Returns:
        ``({index: data URI}, None)``, or ``({}, reason)`` when the data is not image-like
        or its source cannot be read any more.
    """
    shape = image_shape(schema)
    if shape is None:
        return {}, None
    source = str(((config or {}).get("data") or {}).get("source") or "")
    if not source:
        return {}, "thumbnails omitted: config.yaml names no data source"
    wanted = [int(i) for i in indices]
    try:
        if schema.get("kind") == "image":
            files = folder_files(Path(source))
            return {i: file_thumbnail(files[i], shape[0]) for i in wanted if 0 <= i < len(files)}, None
        rows = _table_rows(source, list(schema["columns"]), wanted)
        return dict(zip(wanted, table_thumbnails(rows, shape[1]), strict=True)), None
    except Exception as err:  # noqa: BLE001 - the data moved or changed: the table still renders
        return {}, f"thumbnails omitted: {source} could not be read ({type(err).__name__}: {err})"


def _table_rows(source: str, columns: list[str], indices: list[int]) -> np.ndarray:
    if source.startswith("builtin:"):
        from trainground.data import load_data

        data = load_data(source)
        position = {int(i): p for p, i in enumerate(data.index.tolist())}
        return data.features.numpy()[[position[i] for i in indices]]
    path = Path(source)
    if path.suffix.lower() in (".parquet", ".pq"):  # only the row groups holding the rows shown
        from trainground.data.parquet_parts import read_parquet_rows

        return read_parquet_rows(path, indices, columns)[columns].to_numpy(dtype=np.float64)
    frame = pd.read_csv(path, usecols=columns)
    return frame[columns].to_numpy(dtype=np.float64)[indices]
