"""Image-like data is recognised from the schema, and thumbnails show the right samples."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainground.report.thumbnails import (
    image_shape,
    sample_thumbnails,
    table_thumbnails,
)


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


@pytest.mark.parametrize(("schema", "shape"), [
    ({"kind": "table", "columns": [f"pixel_{i}" for i in range(64)]}, (1, 8, 8)),
    ({"kind": "table", "columns": [f"px{i}" for i in range(784)]}, (1, 28, 28)),
    ({"kind": "image", "height": 20, "width": 30, "mode": "RGB"}, (3, 20, 30)),
    ({"kind": "table", "columns": [f"sensor_{i}" for i in range(64)]}, None),   # square count, not pixels
    ({"kind": "table", "columns": [f"pixel_{i}" for i in range(40)]}, None),    # not square
    ({"kind": "table", "columns": [f"x_{i}" for i in range(40)]}, None),        # mnist1d
    (None, None),
])
def test_image_shape(schema, shape) -> None:
    assert image_shape(schema) == shape


def test_table_thumbnails_draw_ink_dark_on_a_shared_scale() -> None:
    rows = np.zeros((2, 16))
    rows[0, 5] = 16.0
    rows[1, 5] = 8.0
    first, second = (_decode(u) for u in table_thumbnails(rows, 4))
    assert first.shape == (4, 4) and first[1, 1] == 0 and first[0, 0] == 255
    assert second[1, 1] == 128  # half the ink of the first: the scale is shared, not per image


def test_digits_thumbnails_are_the_rows_asked_for() -> None:
    from sklearn.datasets import load_digits

    schema = {"kind": "table", "columns": [f"pixel_{i}" for i in range(64)]}
    thumbs, note = sample_thumbnails({"data": {"source": "builtin:digits"}}, schema, [7, 1000])
    assert note is None and list(thumbs) == [7, 1000]
    digits = load_digits().data
    expected = table_thumbnails(digits[[7, 1000]], 8)
    assert [thumbs[7], thumbs[1000]] == expected


def test_image_folder_thumbnails_follow_the_loader_index(tmp_path: Path) -> None:
    from trainground.data import load_data

    colours = {"cat": [(255, 0, 0), (0, 255, 0)], "dog": [(0, 0, 255)]}
    for name, fills in colours.items():
        (tmp_path / name).mkdir()
        for k, fill in enumerate(fills):
            Image.new("RGB", (40, 20), fill).save(tmp_path / name / f"{k}.png")
    data = load_data(str(tmp_path))
    thumbs, note = sample_thumbnails({"data": {"source": str(tmp_path)}}, data.schema.to_json(), [0, 1, 2])
    assert note is None
    for index in range(3):
        pixels = _decode(thumbs[index])
        assert pixels.shape == (16, 32, 3)  # longest side 32, aspect kept
        source = data.sources[list(data.index.tolist()).index(index)]
        name, k = source.split("/")[0], int(source.split("/")[1][0])
        assert tuple(pixels[8, 16]) == colours[name][k]


def test_a_vanished_source_is_a_note(tmp_path: Path) -> None:
    schema = {"kind": "table", "columns": [f"pixel_{i}" for i in range(64)]}
    thumbs, note = sample_thumbnails({"data": {"source": str(tmp_path / "gone.csv")}}, schema, [0])
    assert thumbs == {} and "could not be read" in note
