"""load_data and load_features_for_prediction: dispatch on the spec, kind mismatches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from trainground.data import (
    ImageSchema,
    TableSchema,
    load_data,
    load_features_for_prediction,
    schema_from_json,
)
from trainground.errors import DataError


def data_error(fn, *args, **options) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **options)
    return str(info.value)


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("x,c,y\n1,a,0\n2,b,1\n3,a,1\n")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, value in (("cat", 10), ("dog", 200)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        Image.new("L", (5, 5), value).save(tmp_path / "imgs" / name / "1.png")
    return tmp_path / "imgs"


def test_dispatch(table: Path, folder: Path) -> None:
    assert load_data(table, target="y").kind == "table"
    assert load_data(str(folder), image_size=3).features.shape == (2, 1, 3, 3)
    assert load_data("builtin:digits", target="ignored").name == "builtin:digits"


def test_table_needs_target(table: Path) -> None:
    msg = data_error(load_data, table)
    assert str(table) in msg and "--target COLUMN" in msg and "x, c, y" in msg


def test_missing_spec(tmp_path: Path) -> None:
    msg = data_error(load_data, tmp_path / "nothing.csv", target="y")
    assert "nothing.csv" in msg and "no such file or folder" in msg


def test_table_prediction_matches_training(table: Path, tmp_path: Path) -> None:
    ds = load_data(table, target="y")
    features, ids = load_features_for_prediction(table, ds.schema.to_json())
    assert torch.equal(features, ds.features) and ids == [0, 1, 2]
    new = tmp_path / "new.csv"
    new.write_text("c,x\nb,5\n")
    features, ids = load_features_for_prediction(new, ds.schema)
    assert features.tolist() == [[5.0, 0.0, 1.0]] and ids == [0]


def test_table_prediction_missing_feature_column(table: Path, tmp_path: Path) -> None:
    ds = load_data(table, target="y")
    new = tmp_path / "new.csv"
    new.write_text("x,y\n1,0\n")
    msg = data_error(load_features_for_prediction, new, ds.schema)
    assert str(new) in msg and "'c'" in msg


def test_builtin_prediction() -> None:
    ds = load_data("builtin:digits")
    features, ids = load_features_for_prediction("builtin:digits", ds.schema)
    assert torch.equal(features, ds.features) and ids == list(range(1797))


def test_image_prediction(folder: Path) -> None:
    ds = load_data(folder)
    features, ids = load_features_for_prediction(folder, ds.schema)
    assert torch.equal(features, ds.features) and ids == ["cat/1.png", "dog/1.png"]


def test_kind_mismatches(table: Path, folder: Path) -> None:
    image_schema = ImageSchema(height=5, width=5, mode="L")
    table_schema = load_data(table, target="y").schema
    assert "trained on images" in data_error(load_features_for_prediction, table, image_schema)
    assert "trained on images" in data_error(load_features_for_prediction, "builtin:digits", image_schema)
    assert "trained on a table" in data_error(load_features_for_prediction, folder, table_schema)


def test_schema_from_json_dispatches(table: Path, folder: Path) -> None:
    table_schema = load_data(table, target="y").schema
    image_schema = load_data(folder).schema
    assert schema_from_json(table_schema.to_json()) == table_schema
    assert isinstance(schema_from_json(image_schema.to_json()), ImageSchema)
    assert isinstance(schema_from_json(table_schema.to_json()), TableSchema)
    assert "kind" in data_error(schema_from_json, {"kind": "audio"})
