"""Parquet read in parts: memory-mapped, row group by row group, only the columns asked for.

A Parquet file is a sequence of row groups, each readable on its own. Reading the whole
file through ``pandas.read_parquet`` holds the Arrow table and the pandas frame at once
(2x the data); :func:`read_parquet_frame` maps the file and lets Arrow free each column
as pandas takes it over, :func:`iter_parquet_parts` gives one row group at a time, and
:func:`read_parquet_rows` reads only the row groups that hold the rows wanted (the
report's thumbnails of a few samples of a large table).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def _open(path: str | Path):
    import pyarrow.parquet as pq

    return pq.ParquetFile(str(path), memory_map=True)


def read_parquet_frame(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The file as one frame, peak memory about the frame's own size (not twice it)."""
    table = _open(path).read(columns=None if columns is None else list(columns))
    # self_destruct frees each Arrow column once converted; split_blocks keeps pandas
    # from consolidating the columns into one more copy
    return table.to_pandas(split_blocks=True, self_destruct=True)


def iter_parquet_parts(path: str | Path, columns: Sequence[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(first_row, frame)`` for each row group in file order; rows keep their file positions
    as the frame's index, so ``first_row + i`` is row ``i``'s 0-based row in the file."""
    file = _open(path)
    start = 0
    for group in range(file.num_row_groups):
        part = file.read_row_group(group, columns=None if columns is None else list(columns)).to_pandas()
        part.index = pd.RangeIndex(start, start + len(part))
        yield start, part
        start += len(part)


def read_parquet_rows(path: str | Path, rows: Sequence[int], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The 0-based ``rows`` of the file, in the order asked, reading only their row groups.

    Raises:
        IndexError: a row beyond the file's end.
    """
    file = _open(path)
    sizes = np.array([file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    wanted = np.asarray(rows, dtype=np.int64)
    if len(wanted) and (wanted.min() < 0 or wanted.max() >= starts[-1]):
        raise IndexError(f"{path}: rows must be in [0, {int(starts[-1])}), got {wanted.min()}..{wanted.max()}")
    groups = np.unique(np.searchsorted(starts, wanted, side="right") - 1)
    parts = []
    for group in groups:
        part = file.read_row_group(int(group), columns=None if columns is None else list(columns)).to_pandas()
        part.index = pd.RangeIndex(int(starts[group]), int(starts[group]) + len(part))
        parts.append(part.loc[part.index.intersection(wanted)])
    if not parts:
        return pd.DataFrame(columns=list(columns or file.schema_arrow.names))
    return pd.concat(parts).loc[wanted]
