"""Image folders: classes from sub-folders, modes, resizing, prediction, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainground.data.images import (
    ImageSchema,
    load_image_folder,
    load_images_for_prediction,
)
from trainground.errors import ConfigError, DataError


def save(path: Path, *, mode: str = "L", size: tuple[int, int] = (6, 4), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 0, 255 - value)
    Image.new(mode, size, color).save(path)
    return path


def data_error(fn, *args, **options) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **options)
    return str(info.value)


@pytest.fixture
def grey_folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    save(root / "dog" / "b.png", value=0)
    save(root / "dog" / "a.png", value=255)
    save(root / "cat" / "x.PNG", value=51)
    save(root / "cat" / ".hidden.png", value=1)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".git").mkdir()
    return root


def test_loads_grey_folder_sorted_by_class_then_file(grey_folder: Path) -> None:
    ds = load_image_folder(grey_folder)
    assert ds.kind == "image" and ds.name == str(grey_folder)
    assert ds.features.shape == (3, 1, 4, 6) and ds.features.dtype == torch.float32
    assert ds.sources == ("cat/x.PNG", "dog/a.png", "dog/b.png")
    assert ds.encoder.classes == ("cat", "dog")
    assert ds.labels.tolist() == [0, 1, 1]
    assert ds.index.tolist() == [0, 1, 2]
    assert ds.features[:, 0, 0, 0].tolist() == pytest.approx([0.2, 1.0, 0.0])
    assert ds.schema == ImageSchema(height=4, width=6, mode="L")


def test_colour_image_makes_everything_rgb_and_resizes_to_first(tmp_path: Path) -> None:
    save(tmp_path / "a" / "1.png", size=(8, 8), value=255)
    save(tmp_path / "b" / "2.jpg", mode="RGB", size=(16, 12), value=200)
    ds = load_image_folder(tmp_path)
    assert ds.schema.mode == "RGB" and ds.features.shape == (2, 3, 8, 8)
    assert ds.features[0].min() == 1.0  # grey replicated in the three channels
    red, green, blue = ds.features[1, :, 4, 4].tolist()
    assert red > 0.7 and green < 0.1 and blue < 0.3


def test_image_size_resizes_to_square(grey_folder: Path) -> None:
    ds = load_image_folder(grey_folder, image_size=5)
    assert ds.features.shape == (3, 1, 5, 5)
    assert (ds.schema.height, ds.schema.width) == (5, 5)
    with pytest.raises(ConfigError):
        load_image_folder(grey_folder, image_size=0)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    for name, level in (("a", 65535), ("b", 16384)):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((4, 4), level, dtype=np.uint16)).save(root / name / "i.png")
    ds = load_image_folder(root)
    assert ds.schema.mode == "L"
    assert ds.features[:, 0, 0, 0].tolist() == pytest.approx([1.0, 0.25], abs=1e-3)


def test_schema_json_round_trip(grey_folder: Path) -> None:
    schema = load_image_folder(grey_folder).schema
    data = json.loads(json.dumps(schema.to_json()))
    assert data["kind"] == "image" and data["mode"] == "L" and ".png" in data["extensions"]
    assert ImageSchema.from_json(data) == schema


def test_prediction_reads_flat_or_nested_folders_and_single_files(grey_folder: Path, tmp_path: Path) -> None:
    ds = load_image_folder(grey_folder)
    features, ids = load_images_for_prediction(grey_folder, ds.schema)
    assert ids == list(ds.sources) and torch.equal(features, ds.features)
    flat = tmp_path / "flat"
    save(flat / "z.png", mode="RGB", size=(3, 3))
    save(flat / "y.bmp", size=(10, 2))
    features, ids = load_images_for_prediction(flat, ds.schema)
    assert ids == ["y.bmp", "z.png"] and features.shape == (2, 1, 4, 6)
    features, ids = load_images_for_prediction(flat / "z.png", ds.schema)
    assert ids == ["z.png"] and features.shape == (1, 1, 4, 6)


def test_prediction_errors(tmp_path: Path) -> None:
    schema = ImageSchema(height=4, width=4, mode="L")
    assert "no such folder" in data_error(load_images_for_prediction, tmp_path / "gone", schema)
    (tmp_path / "empty").mkdir()
    msg = data_error(load_images_for_prediction, tmp_path / "empty", schema)
    assert "empty" in msg and "no images" in msg
    (tmp_path / "broken" / "x.png").parent.mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"garbage")
    assert "x.png" in data_error(load_images_for_prediction, tmp_path / "broken", schema)


def test_missing_path_and_file_instead_of_folder(tmp_path: Path) -> None:
    assert "no such folder" in data_error(load_image_folder, tmp_path / "gone")
    file = save(tmp_path / "one.png")
    assert "not a folder" in data_error(load_image_folder, file)


def test_empty_folder(tmp_path: Path) -> None:
    msg = data_error(load_image_folder, tmp_path)
    assert msg.startswith(str(tmp_path)) and "no class sub-folders" in msg


def test_images_without_class_folders(tmp_path: Path) -> None:
    save(tmp_path / "a.png")
    assert "found 1 image(s) directly" in data_error(load_image_folder, tmp_path)


def test_class_folder_without_images(tmp_path: Path) -> None:
    save(tmp_path / "cat" / "1.png")
    save(tmp_path / "dog" / "2.png")
    (tmp_path / "bird").mkdir()
    (tmp_path / "bird" / "readme.txt").write_text("nothing here")
    msg = data_error(load_image_folder, tmp_path)
    assert str(tmp_path) in msg and "'bird'" in msg and "no images" in msg


def test_only_one_class(tmp_path: Path) -> None:
    save(tmp_path / "cat" / "1.png")
    save(tmp_path / "cat" / "2.png")
    msg = data_error(load_image_folder, tmp_path)
    assert "only one class folder ('cat')" in msg


def test_unreadable_image_names_file(tmp_path: Path) -> None:
    save(tmp_path / "cat" / "1.png")
    bad = tmp_path / "dog" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG not really a png")
    msg = data_error(load_image_folder, tmp_path)
    assert str(bad) in msg and "cannot read" in msg


def test_truncated_image_names_file(tmp_path: Path) -> None:
    save(tmp_path / "cat" / "1.png")
    good = save(tmp_path / "dog" / "2.png", size=(64, 64))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    assert str(good) in data_error(load_image_folder, tmp_path)
