"""Which columns of a table become features, and of which kind.

Numeric and boolean columns are numeric features; text columns with few distinct values
are categorical. Columns that cannot generalise are left out, with the reason kept for
the user's notice:

- id-like columns: every row holds a different value, so a value seen in training is
  never seen again and identifies one row only. Text columns unique per row (names,
  keys) and integer columns unique per row that are a row numbering (consecutive
  integers, e.g. R's ``rownames``) or are named like a key (``id``, ``customer_id``).
  Other unique numbers (a price, a measurement) stay: their size carries information.
- free text: a text column with more than ``max_categories`` distinct values, too many to
  one-hot encode.
- empty columns: no value at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainground.errors import DataError

CSV_SUFFIXES = (".csv",)
_SHOWN = 3  # offending rows quoted in a message; the total count is given too
# Column names that announce a key: "id", "ID", "customer_id", "PassengerId", "row_id", "index",
# R's "rownames", pandas' "Unnamed: 0" (a saved index).
_KEY_NAME = re.compile(r"^(id|key|index|rownames?|unnamed: ?\d+)$|[_\s.](id|key)$", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z]I[dD]$")
# Rows below which a column unique per row is not taken for an id: in a handful of rows a
# few levels (1, 2, 3 or 'red', 'green', 'blue') are as likely to be a real feature.
_MIN_ID_ROWS = 20


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


class RowNamer:
    """Names rows in messages: file lines for CSVs, 0-based rows otherwise."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = Path(source).suffix.lower() in CSV_SUFFIXES

    def name(self, position: int) -> str:
        return f"line {position + 2}" if self.lines else f"row {position}"

    def describe(self, positions: np.ndarray, notes: list[str] | None = None) -> str:
        shown = [self.name(int(p)) for p in positions[:_SHOWN]]
        if notes:
            shown = [f"{name} ({note})" for name, note in zip(shown, notes, strict=False)]  # notes may cover only the shown ones
        more = f" and {len(positions) - _SHOWN} more" if len(positions) > _SHOWN else ""
        return ", ".join(shown) + more


def plain(series: pd.Series, *, column: str, rows: RowNamer) -> pd.Series:
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


def parse_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing or unparseable) and the mask of unparseable cells."""
    if series.dtype != object and not pd.api.types.is_string_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.zeros(len(values), dtype=bool)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values, np.isnan(values) & series.notna().to_numpy()


def raise_bad_numbers(series: pd.Series, bad: np.ndarray, *, column: str, rows: RowNamer, verb: str) -> None:
    where = np.flatnonzero(bad)
    raise DataError(
        f"{rows.source}: column {column!r} {verb} but {rows.name(where[0])} holds "
        f"{series.iloc[where[0]]!r} ({count(len(where), 'such cell')} in all); fix or drop those rows"
    )


def text_values(series: pd.Series) -> pd.Series:
    """A categorical column as text (object dtype), missing cells as NaN; vectorised."""
    return series.astype(str).where(series.notna().to_numpy(), np.nan).astype(object)


@dataclass(frozen=True)
class ColumnPlan:
    """The kind of every candidate feature column, and the reason for each one left out."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    left_out: dict[str, str] = field(default_factory=dict)


def plan_columns(
    frame: pd.DataFrame, candidates: list[str], *, rows: RowNamer, max_categories: int
) -> ColumnPlan:
    """Sort ``candidates`` (columns of ``frame``) into numeric, categorical and left out."""
    numeric, categorical, left_out = [], [], {}
    for column in candidates:
        series = plain(frame[column], column=column, rows=rows)
        present = int(series.notna().sum())
        if present == 0:
            left_out[column] = "empty: no values"
            continue
        values, bad = parse_numbers(series)
        if not bad.any():
            reason = _numeric_key(values, column)
            if reason:
                left_out[column] = reason
            else:
                numeric.append(column)
            continue
        if present - int(bad.sum()) >= 0.5 * present:
            raise_bad_numbers(series, bad, column=column, rows=rows, verb="looks numeric")
        distinct = int(text_values(series).nunique(dropna=True))
        if distinct == present and present >= _MIN_ID_ROWS:
            left_out[column] = f"id-like: a different text value in each of its {present} rows"
        elif distinct > max_categories:
            left_out[column] = (
                f"free text: {distinct} distinct values, too many to one-hot encode (max_categories={max_categories})"
            )
        else:
            categorical.append(column)
    return ColumnPlan(numeric=tuple(numeric), categorical=tuple(categorical), left_out=left_out)


def _numeric_key(values: np.ndarray, column: str) -> str | None:
    """Why an integer column unique per row is a key rather than a quantity, or None."""
    if len(values) < 2 or np.isnan(values).any() or not np.all(values == np.round(values)):
        return None
    if len(np.unique(values)) != len(values):
        return None
    if len(values) >= _MIN_ID_ROWS and values.max() - values.min() == len(values) - 1:
        return f"id-like: numbers its {len(values)} rows ({values.min():.0f} to {values.max():.0f}, each once)"
    if _KEY_NAME.search(column.strip()) or _CAMEL_ID.search(column.strip()):
        return "id-like: a key (a different integer in each row, named like an id)"
    return None
