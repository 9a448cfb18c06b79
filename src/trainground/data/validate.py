"""Checks of a table that its parsing alone does not catch, each a small function the loader calls.

- duplicate column names (pandas would rename the second ``f1`` to ``f1.1``, and a
  duplicated target column would become a feature that leaks the label);
- numbers that are finite as float64 but overflow the float32 the model computes in;
- a target that is a measurement, not a class (a regression target unless declared otherwise).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from trainground.errors import DataError

# float32's largest finite value; anything larger becomes inf when the features are cast.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# A target is a measurement rather than a class when its values are fractional and this many
# differ: twenty levels is already more than any graded scale (grades, ratings, half-steps).
CONTINUOUS_MIN_DISTINCT = 20
# ...or, whatever its type, when it has more than this many classes and most rows are a class of
# their own (a class seen once can be neither learnt nor held out for validation).
MANY_CLASSES = 50


class RowNamer(Protocol):
    source: str

    def describe(self, positions: np.ndarray, notes: list[str] | None = None) -> str: ...


def check_header(path: Path, *, is_csv: bool) -> None:
    """Refuse a file whose header names a column twice (before pandas renames the copy)."""
    if is_csv:
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                names = next(csv.reader(fh), [])
        except (UnicodeDecodeError, csv.Error):
            return  # the CSV reader reports these with the line
    else:
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception:  # noqa: BLE001 - the Parquet reader reports an unreadable file
            return
    check_unique_names([str(n).strip() for n in names], source=str(path))


def check_unique_names(names: list[str], *, source: str, target: str | None = None) -> None:
    twice = sorted(name for name, count in Counter(names).items() if count > 1 and name != "")
    if not twice:
        return
    shown = ", ".join(map(repr, twice))
    leak = f"; a second copy of the target {target!r} would leak the label" if target in twice else ""
    raise DataError(f"{source}: duplicate column name(s) {shown}{leak}; rename or drop the copies "
                    "(pandas would rename a copy and use it as a feature)")


def check_fits_float32(values: np.ndarray, *, column: str, rows: RowNamer) -> None:
    """Refuse finite values beyond float32's range: cast, they become inf and the loss NaN."""
    too_big = np.flatnonzero(np.abs(values) > FLOAT32_MAX)
    if len(too_big):
        notes = [f"{values[i]:.3g}" for i in too_big[:3]]
        raise DataError(
            f"{rows.source}: column {column!r} has {len(too_big)} value(s) beyond float32's range "
            f"(+-{FLOAT32_MAX:.3g}), at {rows.describe(too_big, notes)}; rescale the column (e.g. log or divide)"
        )


class ContinuousTargetError(DataError):
    """A target column refused as a class column because it looks like a measurement."""


def looks_continuous(labels: pd.Series) -> bool:
    """A target is a measurement, not a class: numeric with fractional values, at least
    ``CONTINUOUS_MIN_DISTINCT`` of them distinct (the a-priori rule of :func:`check_classification_target`,
    and the rule by which a target without a declared kind is trained as a regression)."""
    present = labels.dropna()
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    values = np.asarray(present, dtype=float) if numeric else np.zeros(0)
    values = values[np.isfinite(values)]
    return bool((values % 1 != 0).any()) and present.nunique() >= CONTINUOUS_MIN_DISTINCT


def check_classification_target(labels: pd.Series, *, target: str, source: str, declared: bool = False) -> None:
    """Refuse a continuous target as a class column (declare it a regression target instead);
    ``declared``: the user said it is a class column, so looking continuous is not refused."""
    present = labels.dropna()
    distinct = present.nunique()
    continuous = looks_continuous(labels) and not declared
    too_many = distinct > MANY_CLASSES and distinct > len(present) / 2
    if not (continuous or too_many):
        return
    examples = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in present.unique()[:3])
    what = "looks continuous" if continuous else "has a class for nearly every row"
    error = ContinuousTargetError if continuous else DataError
    raise error(
        f"{source}: target column {target!r} {what} ({distinct} distinct values in {len(present)} rows, "
        f"e.g. {examples}); to classify, bin it into classes first (e.g. pandas.qcut) or choose a label "
        f"column; to predict the number, train a regression: --regression {target} "
        f"(YAML data.task_kinds: {{{target}: regression}})"
    )
