"""CSV and Parquet tables: loading, one-hot encoding, prediction-time encoding, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainground.data.files import read_table
from trainground.data.table import TableSchema, encode_table, load_table
from trainground.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def data_error(fn, *args, **options) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **options)
    return str(info.value)


# --- loading ---------------------------------------------------------------------------


def test_numeric_csv_loads_with_shape_labels_and_index(tmp_path: Path) -> None:
    path = write(tmp_path / "num.csv", "a,b,y\n1,2.5,0\n3,4,1\n5,6,0\n7,8,2\n")
    ds = load_table(path, target="y")
    assert ds.kind == "table" and ds.name == str(path)
    assert ds.features.dtype == torch.float32 and ds.features.shape == (4, 2)
    assert ds.features[0].tolist() == [1.0, 2.5]
    assert ds.labels.tolist() == [0, 1, 0, 2]
    assert ds.index.tolist() == [0, 1, 2, 3]
    assert ds.encoder.classes == (0, 1, 2)
    assert ds.schema.numeric == ("a", "b") and ds.schema.categorical == ()


def test_categorical_column_is_one_hot_after_numeric_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "cat.csv", "x,color,z,y\n1,red,5,a\n2,blue,6,b\n3,red,7,a\n4,green,8,b\n")
    ds = load_table(path, target="y")
    schema = ds.schema
    assert schema.categories == {"color": ("blue", "green", "red")}
    assert schema.feature_names == ("x", "z", "color=blue", "color=green", "color=red")
    assert ds.features.tolist() == [
        [1, 5, 0, 0, 1],
        [2, 6, 1, 0, 0],
        [3, 7, 0, 0, 1],
        [4, 8, 0, 1, 0],
    ]


def test_bool_column_is_numeric_zero_one(tmp_path: Path) -> None:
    path = write(tmp_path / "bool.csv", "flag,y\nTrue,a\nFalse,b\nTrue,b\n")
    ds = load_table(path, target="y")
    assert ds.schema.numeric == ("flag",)
    assert ds.features[:, 0].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("values", "classes"),
    [
        (["cat", "dog", "cat", "bird"], ("bird", "cat", "dog")),
        ([True, False, True, True], (False, True)),
        ([0.5, 1.5, 0.5, 2.5], (0.5, 1.5, 2.5)),
        ([3, 1, 3, 2], (1, 2, 3)),
    ],
)
def test_labels_of_any_type_round_trip(tmp_path: Path, values: list, classes: tuple) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": values}).to_parquet(path)
    ds = load_table(path, target="y")
    assert ds.encoder.classes == classes
    assert ds.encoder.decode(ds.labels) == values
    restored = type(ds.encoder).from_json(json.loads(json.dumps(ds.encoder.to_json())))
    assert restored.decode(ds.labels) == values


def test_parquet_loads_mixed_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    frame = pd.DataFrame(
        {"n": np.arange(5, dtype=np.int64), "c": ["u", "v", "u", "w", "v"], "y": ["p", "q", "p", "q", "p"]}
    )
    frame.to_parquet(path)
    ds = load_table(path, target="y")
    assert ds.features.shape == (5, 4)
    assert ds.schema.feature_names == ("n", "c=u", "c=v", "c=w")
    assert ds.labels.tolist() == [0, 1, 0, 1, 0]


def test_trailing_blank_lines_are_ignored(tmp_path: Path) -> None:
    ds = load_table(write(tmp_path / "t.csv", "x,y\n1,1\n2,2\n\n\n"), target="y")
    assert len(ds) == 2 and ds.encoder.classes == (1, 2)


def test_schema_json_round_trip(tmp_path: Path) -> None:
    ds = load_table(write(tmp_path / "s.csv", "x,c,y\n1,a,0\n2,b,1\n"), target="y")
    data = json.loads(json.dumps(ds.schema.to_json()))
    assert data["kind"] == "table"
    assert data["categorical"] == {"c": ["a", "b"]} and data["numeric"] == ["x"]
    assert data["feature_names"] == ["x", "c=a", "c=b"]
    assert TableSchema.from_json(data) == ds.schema


# --- prediction-time encoding ----------------------------------------------------------


def test_encode_table_equals_training_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", "x,c,flag,y\n1.5,a,True,0\n2,b,False,1\n3,c,True,0\n")
    ds = load_table(path, target="y")
    again = encode_table(read_table(path), ds.schema, source=str(path))
    assert torch.equal(again, ds.features)
    # without the target, with extra columns and another column order
    frame = read_table(path).drop(columns="y")[["flag", "c", "x"]].assign(extra=9)
    assert torch.equal(encode_table(frame, ds.schema, source="new.csv"), ds.features)


def test_unseen_category_encodes_as_zeros_with_warning(tmp_path: Path) -> None:
    ds = load_table(write(tmp_path / "t.csv", "x,c,y\n1,a,0\n2,b,1\n"), target="y")
    with pytest.warns(UserWarning, match=r"column 'c' has 2 values never seen"):
        out = encode_table(pd.DataFrame({"x": [1, 2, 3], "c": ["z", "a", "q"]}), ds.schema, source="p.csv")
    assert out.tolist() == [[1, 0, 0], [2, 1, 0], [3, 0, 0]]  # x, c=a, c=b


def test_known_categories_do_not_warn(tmp_path: Path) -> None:
    ds = load_table(write(tmp_path / "t.csv", "x,c,y\n1,a,0\n2,b,1\n"), target="y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_table(pd.DataFrame({"x": [1], "c": ["b"]}), ds.schema, source="p.csv")


def test_prediction_missing_feature_column(tmp_path: Path) -> None:
    ds = load_table(write(tmp_path / "t.csv", "x,c,y\n1,a,0\n2,b,1\n"), target="y")
    msg = data_error(encode_table, pd.DataFrame({"x": [1]}), ds.schema, source="new.csv")
    assert msg.startswith("new.csv") and "'c'" in msg and "missing feature column" in msg


def test_prediction_bad_cells_name_line(tmp_path: Path) -> None:
    ds = load_table(write(tmp_path / "t.csv", "x,y\n1,0\n2,1\n"), target="y")
    bad = write(tmp_path / "new.csv", "x\n1\noops\n")
    msg = data_error(encode_table, read_table(bad), ds.schema, source=str(bad))
    assert str(bad) in msg and "'x'" in msg and "line 3" in msg and "'oops'" in msg
    # a missing number gets the training median (no indicator: x had no missing value in training)
    nan = write(tmp_path / "nan.csv", "x\n1\n\n2\n")
    assert encode_table(read_table(nan), ds.schema, source=str(nan)).tolist() == [[1.0], [1.5], [2.0]]


# --- bad files -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    msg = data_error(load_table, path, target="y")
    assert msg.startswith(str(path)) and "no such file" in msg


def test_directory_and_unsupported_suffix(tmp_path: Path) -> None:
    assert "folder" in data_error(read_table, tmp_path)
    msg = data_error(read_table, write(tmp_path / "t.xlsx", "x"))
    assert "t.xlsx" in msg and ".csv" in msg and ".parquet" in msg


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.csv", "")
    msg = data_error(load_table, path, target="y")
    assert msg.startswith(str(path)) and "empty" in msg


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "head.csv", "x,y\n")
    assert "no data rows" in data_error(load_table, path, target="y")


def test_malformed_csv_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "x,y\n1,0\n2,1\n3,1,9\n")
    msg = data_error(load_table, path, target="y")
    assert msg.startswith(str(path)) and "malformed CSV" in msg and "line 4" in msg


def test_unclosed_quote_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "quote.csv", 'x,y\n1,0\n"2,1\n3,1\n')
    msg = data_error(load_table, path, target="y")
    assert "line 3" in msg and "quoted" in msg


def test_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("x,y\n1,a\n2,café\n".encode("latin-1"))
    msg = data_error(load_table, path, target="y")
    assert msg.startswith(str(path)) and "not a UTF-8 text CSV" in msg and "line 3" in msg


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    msg = data_error(load_table, path, target="y")
    assert msg.startswith(str(path)) and "Parquet" in msg


# --- bad columns and cells -------------------------------------------------------------


def test_missing_target_suggests_closest(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "width,label\n1,a\n2,b\n")
    msg = data_error(load_table, path, target="lable")
    assert str(path) in msg and "'lable'" in msg and "did you mean 'label'" in msg
    assert "width, label" in msg


def test_rows_without_label_are_kept_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "t.csv", "x,y\n1,a\n2,b\n3,\n4,a\n5,\n")
    ds = load_table(path, target="y")
    assert ds.index.tolist() == [0, 1, 3] and ds.labels.tolist() == [0, 1, 0]
    assert ds.unlabelled_index.tolist() == [2, 4] and ds.unlabelled.tolist() == [[3.0], [5.0]]
    assert ds.schema.unlabelled == 2
    assert "2 rows without a label in 'y'" in caplog.text
    msg = data_error(load_table, write(tmp_path / "none.csv", "x,y\n1,\n2,\n"), target="y")
    assert "no labels" in msg


def test_target_with_one_class(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x,y\n1,a\n2,a\n3,a\n")
    msg = data_error(load_table, path, target="y")
    assert str(path) in msg and "'y'" in msg and "single class ('a'" in msg and "at least 2" in msg


def test_no_feature_column(tmp_path: Path) -> None:
    msg = data_error(load_table, write(tmp_path / "t.csv", "y\na\nb\n"), target="y")
    assert "no feature columns" in msg


def test_missing_numbers_get_median_and_indicator(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "t.csv", "x,z,y\n1,1,a\n2,,b\n3,4,a\n")
    ds = load_table(path, target="y")
    assert ds.schema.feature_names == ("x", "z", "z (missing)")
    assert ds.features.tolist() == [[1, 1, 0], [2, 2.5, 1], [3, 4, 0]]
    assert ds.schema.missing == {"z": 1} and ds.schema.medians == {"x": 2.0, "z": 2.5}
    assert "imputed missing numbers: 'z' 1 (median 2.5)" in caplog.text
    # medians of the training rows only: the imputed cell changes, the layout does not
    from trainground.data.table import fit_on_rows
    refit = fit_on_rows(ds, np.array([0, 1]))
    assert refit.features.tolist() == [[1, 1, 0], [2, 1, 1], [3, 4, 0]] and refit.schema.medians["z"] == 1.0
    again = encode_table(read_table(path), refit.schema, source=str(path))
    assert torch.equal(again, refit.features)


def test_inf_in_numeric_feature_counts_all(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x,y\n1,a\ninf,b\n3,a\n-inf,b\ninf,a\ninf,b\n")
    msg = data_error(load_table, path, target="y")
    assert "'x'" in msg and "4 infinite values" in msg
    assert "line 3 (inf)" in msg and "line 5 (-inf)" in msg and "1 more" in msg


def test_parquet_errors_name_zero_based_row(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x": [1.0, np.inf, 3.0], "y": [0, 1, 0]}).to_parquet(path)
    msg = data_error(load_table, path, target="y")
    assert "'x'" in msg and "row 1" in msg


def test_numeric_looking_column_with_bad_cell(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x,y\n1,a\n2,b\nabc,a\n4,b\n5,a\n")
    msg = data_error(load_table, path, target="y")
    assert "column 'x' looks numeric but line 4 holds 'abc'" in msg


def test_too_many_categories(tmp_path: Path) -> None:
    rows = "".join(f"name{i},{i % 2}\n" for i in range(12))
    path = write(tmp_path / "t.csv", "who,y\n" + rows)
    msg = data_error(load_table, path, target="y", max_categories=10)  # the only column is left out
    assert str(path) in msg and "'who'" in msg and "12 distinct" in msg and "one-hot" in msg
    assert load_table(path, target="y").features.shape == (12, 12)
    wider = write(tmp_path / "w.csv", "who,x,y\n" + "".join(f"name{i},{i % 3},{i % 2}\n" for i in range(12)))
    ds = load_table(wider, target="y", max_categories=10)
    assert ds.schema.columns == ("x",) and "free text" in ds.schema.left_out["who"]


def test_missing_category_is_its_own_category(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "t.csv", "c,y\nu,a\nv,b\n,a\n")
    ds = load_table(path, target="y")
    assert ds.schema.categories == {"c": ("(missing)", "u", "v")}
    assert ds.features.tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    assert "missing categories became category '(missing)': 'c' 1" in caplog.text


def test_id_like_columns_are_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = 30
    frame = pd.DataFrame({
        "rownames": np.arange(1, n + 1),  # a row numbering
        "PassengerId": np.random.default_rng(0).permutation(n) * 7 + 1000,  # a key, by name
        "name": [f"person {i}" for i in range(n)],  # unique text
        "fare": np.linspace(5, 80, n),  # unique, but a quantity: kept
        "sex": ["m", "f"] * (n // 2),
        "y": [0, 1, 1] * (n // 3),
    })
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    ds = load_table(path, target="y")
    assert ds.schema.columns == ("fare", "sex")
    assert set(ds.schema.left_out) == {"rownames", "PassengerId", "name"}
    assert "left out column(s) 'rownames' (id-like" in caplog.text
    ignored = load_table(path, target="y", ignore=["sex"])
    assert ignored.schema.columns == ("fare",) and ignored.schema.left_out["sex"].startswith("ignored")
    assert "'nope'" in data_error(load_table, path, target="y", ignore=["nope"])



def test_unsupported_dtype(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"when": pd.date_range("2024-01-01", periods=3), "y": [0, 1, 0]}).to_parquet(path)
    msg = data_error(load_table, path, target="y")
    assert "'when'" in msg and "datetime64" in msg


def test_duplicate_column_names() -> None:
    from trainground.data.table import frame_to_dataset

    frame = pd.DataFrame([[1, 2, 0], [3, 4, 1]], columns=["x", "x", "y"])
    assert "duplicate column" in data_error(frame_to_dataset, frame, target="y", source="f")
