"""Parquet read in parts: row groups one at a time, only the groups holding the rows wanted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainground.data.parquet_parts import iter_parquet_parts, read_parquet_frame, read_parquet_rows
from trainground.data.files import read_table


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.integers(0, 9, 1000), "label": rng.choice(["x", "y"], 1000)})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=128)
    assert pq.ParquetFile(path).num_row_groups == 8
    return path


def test_parts_are_the_row_groups_and_concatenate_to_the_file(table_file: Path) -> None:
    whole = pd.read_parquet(table_file)
    parts = list(iter_parquet_parts(table_file, columns=["a", "label"]))
    assert [start for start, _ in parts] == list(range(0, 1000, 128))
    assert all(len(p) == 128 for _, p in parts[:-1]) and len(parts[-1][1]) == 1000 - 7 * 128
    pd.testing.assert_frame_equal(pd.concat([p for _, p in parts]), whole[["a", "label"]])
    pd.testing.assert_frame_equal(read_parquet_frame(table_file), whole)
    pd.testing.assert_frame_equal(read_table(table_file), whole)


def test_rows_read_only_their_row_groups(table_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        read.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    rows = [999, 5, 130, 6]
    got = read_parquet_rows(table_file, rows, ["a", "b"])
    assert sorted(read) == [0, 1, 7]  # 3 of the 8 row groups
    expected = pd.read_parquet(table_file, columns=["a", "b"]).iloc[rows]
    pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(IndexError):
        read_parquet_rows(table_file, [1000])
