"""CSV and Parquet tables: read, check, and encode as a float32 feature matrix.

Numeric and boolean columns are used as they are; text columns with few distinct
values are one-hot encoded. Every problem a user can fix is raised as a
:class:`~trainground.errors.DataError` naming the file, the column and the row: CSV
rows are named by their line in the file (data row ``i`` is line ``i + 2``, after the
header), other sources by their 0-based row.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import torch
from torch import Tensor

from trainground.data.dataset import IndexedDataset
from trainground.data.labels import LabelEncoder
from trainground.data.validate import (
    check_classification_target,
    check_fits_float32,
    check_header,
    check_unique_names,
)
from trainground.errors import DataError

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
_SHOWN = 3  # offending rows quoted in a message; the total count is given too


@dataclass(frozen=True)
class TableSchema:
    """How the columns of a table become features, so prediction encodes exactly alike.

    Args:
        target: the label column.
        columns: feature columns, in input order.
        categories: sorted category strings of each one-hot encoded column; a feature
            column absent from it is numeric.
    """

    target: str
    columns: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.categories)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c in self.categories)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Encoded feature names: a numeric column as is, a categorical one as ``col=value``."""
        names: list[str] = []
        for column in self.columns:
            if column in self.categories:
                names.extend(f"{column}={value}" for value in self.categories[column])
            else:
                names.append(column)
        return tuple(names)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "table",
            "target": self.target,
            "columns": list(self.columns),
            "numeric": list(self.numeric),
            "categorical": {c: list(self.categories[c]) for c in self.categorical},
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableSchema:
        # numeric and feature_names are derived; they are stored for readers of the JSON
        categories = {str(c): tuple(str(v) for v in vs) for c, vs in data["categorical"].items()}
        return cls(target=str(data["target"]), columns=tuple(data["columns"]), categories=categories)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` (UTF-8, with a header line) or ``.parquet``/``.pq`` file.

    Raises:
        DataError: missing, empty, malformed or unreadable file, or a file without rows.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        supported = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        shown = suffix or "(no suffix)"
        raise DataError(f"{path}: unsupported file type {shown!r}; supported: {supported}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    is_csv = suffix in CSV_SUFFIXES
    check_header(path, is_csv=is_csv)
    frame = _read_csv(path) if is_csv else _read_parquet(path)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows" + (" (only a header line)" if is_csv else ""))
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # blank lines are kept (as empty rows) so that data row i stays on line i + 2
        frame = pd.read_csv(path, encoding="utf-8", skip_blank_lines=False)
        filled = np.flatnonzero(frame.notna().any(axis=1).to_numpy())
        end = int(filled[-1]) + 1 if len(filled) else 0
        if end < len(frame):
            # blank lines at the end are an editor artefact, not rows; reading again
            # without them keeps integer columns integer (an empty row makes them float)
            frame = pd.read_csv(path, encoding="utf-8", skip_blank_lines=False, nrows=end)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header line)") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: malformed CSV: {_parser_message(err)}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV ({_first_bad_byte(path)})") from None
    return frame


def _parser_message(err: Exception) -> str:
    text = str(err).strip()
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        want, line, saw = fields.groups()
        return f"line {line} has {saw} fields, the header has {want}"
    quote = re.search(r"EOF inside string starting at row (\d+)", text)
    if quote:  # pandas counts rows from 0 with the header as row 0
        return f"a quoted field opened on line {int(quote.group(1)) + 1} is never closed"
    return text.removeprefix("Error tokenizing data. C error: ")


def _first_bad_byte(path: Path) -> str:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:  # pandas reports offsets within its read buffer
        line = raw[: err.start].count(b"\n") + 1
        return f"byte 0x{raw[err.start]:02x} on line {line} is not UTF-8; re-save the file as UTF-8"
    return "re-save the file as UTF-8"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read as Parquet: {err}") from None


def load_table(path: str | Path, *, target: str, max_categories: int = 50) -> IndexedDataset:
    """Load a CSV or Parquet table as a dataset; every other column is a feature.

    Args:
        path: the ``.csv`` or ``.parquet`` file.
        target: the label column; labels may be text, integers, floats or booleans.
        max_categories: most distinct values a text column may have to be one-hot encoded.

    Returns:
        A ``"table"`` dataset whose ``index`` is the 0-based data row and whose
        ``schema`` is the :class:`TableSchema` used to encode it.
    """
    frame = read_table(path)
    return frame_to_dataset(frame, target=target, source=str(path), max_categories=max_categories)


def frame_to_dataset(
    frame: pd.DataFrame, *, target: str, source: str, max_categories: int = 50
) -> IndexedDataset:
    """Check and encode an in-memory table (what :func:`load_table` does after reading).

    Args:
        frame: the table; rows are samples.
        target: the label column.
        source: where the table came from, for messages (a ``.csv`` path names lines).
        max_categories: most distinct values a text column may have to be one-hot encoded.
    """
    rows = _RowNamer(source)
    frame = _named_columns(frame, source=source)
    columns = list(frame.columns)
    if target not in columns:
        close = difflib.get_close_matches(target, columns, n=1, cutoff=0.6)
        close += [c for c in columns if c.lower() == target.lower() and c not in close]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{source}: no target column {target!r}{hint} (columns: {', '.join(columns)})"
        )
    labels = frame[target]
    check_classification_target(labels, target=target, source=source)
    missing = np.flatnonzero(labels.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"{source}: target column {target!r} has {_count(len(missing), 'missing label')}, at "
            f"{rows.describe(missing)}; every row needs a label"
        )
    encoder = LabelEncoder.fit(labels)
    if len(encoder.classes) < 2:
        raise DataError(
            f"{source}: target column {target!r} holds a single class ({encoder.classes[0]!r} "
            f"in all {len(labels)} rows); classification needs at least 2 classes"
        )
    features = [c for c in columns if c != target]
    if not features:
        raise DataError(
            f"{source}: no feature columns; the table holds only the target column {target!r}"
        )
    categories = {}
    for column in features:
        found = _infer_categories(frame[column], column=column, rows=rows, max_categories=max_categories)
        if found is not None:
            categories[column] = found
    schema = TableSchema(target=target, columns=tuple(features), categories=categories)
    matrix, _ = _encode(frame, schema, rows)
    n = len(frame)
    return IndexedDataset(
        features=torch.from_numpy(matrix),
        labels=torch.from_numpy(encoder.encode(labels)),
        index=torch.arange(n, dtype=torch.long),
        encoder=encoder,
        kind="table",
        name=source,
        schema=schema,
    )


def encode_table(frame: pd.DataFrame, schema: TableSchema, *, source: str) -> Tensor:
    """Encode a new table (e.g. at prediction time) exactly as the training table was.

    The target column and any extra column are ignored. A category never seen in
    training is encoded as all zeros, with a warning.

    Args:
        frame: the new table.
        schema: the schema of the training data.
        source: where ``frame`` came from, for messages (a ``.csv`` path names lines).

    Returns:
        ``[N, len(schema.feature_names)]`` float32 features.
    """
    frame = _named_columns(frame, source=source)
    absent = [c for c in schema.columns if c not in frame.columns]
    if absent:
        raise DataError(
            f"{source}: missing feature column(s) {', '.join(map(repr, absent))} that the model "
            f"was trained on (columns here: {', '.join(map(str, frame.columns))})"
        )
    matrix, unseen = _encode(frame, schema, _RowNamer(source))
    for column, count in unseen.items():
        warnings.warn(
            f"{source}: column {column!r} has {_count(count, 'value')} never seen in training, "
            f"encoded as all-zero one-hot vectors",
            stacklevel=2,
        )
    return torch.from_numpy(matrix)


def _named_columns(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """The frame with text column names, refusing duplicates (``frame[c]`` must be one column)."""
    names = [str(c) for c in frame.columns]
    check_unique_names(names, source=source)
    return frame.set_axis(names, axis=1)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


class _RowNamer:
    """Names rows in messages: file lines for CSVs, 0-based rows otherwise."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = Path(source).suffix.lower() in CSV_SUFFIXES

    def name(self, position: int) -> str:
        return f"line {position + 2}" if self.lines else f"row {position}"

    def describe(self, positions: np.ndarray, notes: list[str] | None = None) -> str:
        shown = [self.name(int(p)) for p in positions[:_SHOWN]]
        if notes:
            shown = [f"{name} ({note})" for name, note in zip(shown, notes)]
        more = f" and {len(positions) - _SHOWN} more" if len(positions) > _SHOWN else ""
        return ", ".join(shown) + more


def _plain(series: pd.Series, *, column: str, rows: _RowNamer) -> pd.Series:
    """The column as numbers, booleans or Python objects; other dtypes are refused."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(object)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_string_dtype(series):
        return series
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_complex_dtype(series):
        return series
    if series.dtype == object:
        odd = np.flatnonzero([not _is_scalar_cell(v) for v in series.tolist()])
        if len(odd):
            kind = type(series.iloc[odd[0]]).__name__
            raise DataError(
                f"{rows.source}: column {column!r} holds {kind} values (first at "
                f"{rows.name(odd[0])}); only numbers, booleans and text can be features"
            )
        return series
    raise DataError(
        f"{rows.source}: column {column!r} has type {series.dtype}, which cannot be a feature; "
        f"drop it or convert it to numbers"
    )


def _is_scalar_cell(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float, Decimal, np.generic)):
        return True
    return np.ndim(value) == 0 and bool(pd.isna(value))


def _parse_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing or unparseable) and the mask of unparseable cells."""
    if series.dtype != object and not pd.api.types.is_string_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.zeros(len(values), dtype=bool)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values, np.isnan(values) & series.notna().to_numpy()


def _infer_categories(
    series: pd.Series, *, column: str, rows: _RowNamer, max_categories: int
) -> tuple[str, ...] | None:
    """Sorted categories of a text column, or ``None`` for a numeric column."""
    series = _plain(series, column=column, rows=rows)
    _, bad = _parse_numbers(series)
    present = int(series.notna().sum())
    if not bad.any():
        return None
    if present - int(bad.sum()) >= 0.5 * present:
        _raise_bad_numbers(series, bad, column=column, rows=rows, verb="looks numeric")
    categories = tuple(sorted({str(v) for v in series.dropna().tolist()}))
    if len(categories) > max_categories:
        raise DataError(
            f"{rows.source}: column {column!r} has {len(categories)} distinct text values, too many "
            f"to one-hot encode (max_categories={max_categories}); drop the column or encode it "
            f"as numbers"
        )
    return categories


def _raise_bad_numbers(
    series: pd.Series, bad: np.ndarray, *, column: str, rows: _RowNamer, verb: str
) -> None:
    where = np.flatnonzero(bad)
    raise DataError(
        f"{rows.source}: column {column!r} {verb} but {rows.name(where[0])} holds "
        f"{series.iloc[where[0]]!r} ({_count(len(where), 'such cell')} in all); fix or drop those rows"
    )


def _encode(
    frame: pd.DataFrame, schema: TableSchema, rows: _RowNamer
) -> tuple[np.ndarray, dict[str, int]]:
    """The float32 feature matrix and, per categorical column, the count of unseen values."""
    blocks: list[np.ndarray] = []
    unseen: dict[str, int] = {}
    for column in schema.columns:
        series = _plain(frame[column], column=column, rows=rows)
        if column in schema.categories:
            block, unknown = _one_hot(series, schema.categories[column], column=column, rows=rows)
            if unknown:
                unseen[column] = unknown
        else:
            block = _numeric(series, column=column, rows=rows)[:, None]
        blocks.append(block)
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
    return np.ascontiguousarray(matrix, dtype=np.float32), unseen


def _numeric(series: pd.Series, *, column: str, rows: _RowNamer) -> np.ndarray:
    values, bad = _parse_numbers(series)
    if bad.any():
        _raise_bad_numbers(series, bad, column=column, rows=rows, verb="is numeric")
    invalid = np.flatnonzero(~np.isfinite(values))
    if len(invalid):
        notes = ["missing" if np.isnan(values[i]) else str(values[i]) for i in invalid[:_SHOWN]]
        raise DataError(
            f"{rows.source}: column {column!r} has "
            f"{_count(len(invalid), 'missing or infinite value')}, at {rows.describe(invalid, notes)}; "
            f"fill them in or drop those rows"
        )
    check_fits_float32(values, column=column, rows=rows)
    return values


def _one_hot(
    series: pd.Series, categories: tuple[str, ...], *, column: str, rows: _RowNamer
) -> tuple[np.ndarray, int]:
    missing = np.flatnonzero(series.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"{rows.source}: category column {column!r} has {_count(len(missing), 'missing value')}, "
            f"at {rows.describe(missing)}; fill them in (e.g. with 'unknown') or drop those rows"
        )
    # get_indexer gives -1 for values outside the training categories.
    codes = pd.Index(categories).get_indexer(series.astype(str)).astype(np.int64)
    block = np.zeros((len(codes), len(categories)), dtype=np.float32)
    known = codes >= 0
    block[np.flatnonzero(known), codes[known]] = 1.0
    return block, int((~known).sum())
