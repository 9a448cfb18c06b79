"""CSV and Parquet tables: read, choose the feature columns, and encode them as a float32 matrix.

Raw tables are taken as users have them. Id-like and free-text columns are left out
(:mod:`trainground.data.columns`); missing numbers are imputed with the training rows'
median plus a missing-indicator column, missing categories become a category of their
own (:mod:`trainground.data.preprocess`); rows without a label are kept aside, not
trained on, so they can be predicted. Each of these is told to the user in a one-line
notice (logger ``trainground.data``) and recorded in the :class:`TableSchema`. A problem
a user must fix is raised as a :class:`~trainground.errors.DataError` naming the file,
the column and the row: CSV rows are named by their line in the file (data row ``i`` is
line ``i + 2``, after the header), other sources by their 0-based row.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from trainground.data.columns import (
    RowNamer,
    count,
    parse_numbers,
    plain,
    plan_columns,
    raise_bad_numbers,
    text_values,
)
from trainground.data.dataset import IndexedDataset
from trainground.data.files import read_table
from trainground.data.labels import LabelEncoder
from trainground.data.preprocess import (
    MISSING_CATEGORY,
    build_transformer,
    fit_categories,
    fit_medians,
    transform,
)
from trainground.data.validate import (
    check_classification_target,
    check_fits_float32,
    check_unique_names,
)
from trainground.errors import DataError

# Version of the stored preprocessing; a model file without it predates imputation.
_LAYOUT = "column_transformer/1"
logger = logging.getLogger("trainground.data")


@dataclass(frozen=True)
class TableSchema:
    """How the columns of a table become features, so prediction encodes exactly alike.

    Args:
        target: the label column.
        columns: feature columns, in input order.
        categories: sorted category strings of each one-hot encoded column (``(missing)``
            among them when the column had missing cells); a feature column absent from it
            is numeric.
        medians: fill value of each numeric column (its median over the training rows).
        indicators: numeric columns that had missing values and so get a 0/1 indicator.
        left_out: columns that are not features, with the reason (id-like, free text,
            empty, ignored by the user).
        missing: missing cells per feature column in the table (for the report).
        unlabelled: rows without a label (not trained on).
    """

    target: str
    columns: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    medians: Mapping[str, float] = field(default_factory=dict)
    indicators: tuple[str, ...] = ()
    left_out: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, int] = field(default_factory=dict)
    unlabelled: int = 0

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.categories)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c in self.categories)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Encoded feature names: numeric columns, ``col (missing)`` indicators, then ``col=value``."""
        names = list(self.numeric) + [f"{c} (missing)" for c in self.indicators]
        for column in self.categorical:
            names.extend(f"{column}={value}" for value in self.categories[column])
        return tuple(names)

    def notes(self) -> list[str]:
        """One line per thing done to the table that the user did not ask for."""
        lines = []
        if self.left_out:
            shown = "; ".join(f"{c!r} ({why})" for c, why in self.left_out.items())
            lines.append(f"left out column(s) {shown}; choose with --ignore COL,... / data.ignore")
        numeric = [c for c in self.numeric if self.missing.get(c)]
        if numeric:
            shown = ", ".join(f"{c!r} {self.missing[c]} (median {self.medians[c]:.4g})" for c in numeric)
            lines.append(f"imputed missing numbers: {shown}, each with a missing-indicator column")
        categorical = [c for c in self.categorical if self.missing.get(c)]
        if categorical:
            shown = ", ".join(f"{c!r} {self.missing[c]}" for c in categorical)
            lines.append(f"missing categories became category {MISSING_CATEGORY!r}: {shown}")
        if self.unlabelled:
            lines.append(
                f"{count(self.unlabelled, 'row')} without a label in {self.target!r}: left out of training "
                f"(diagnose predicts a label for them)"
            )
        return lines

    def transformer(self):  # noqa: ANN201 - sklearn.compose.ColumnTransformer
        """The fitted scikit-learn ``ColumnTransformer`` this schema describes."""
        return build_transformer(
            self.numeric, self.medians, self.indicators, {c: self.categories[c] for c in self.categorical}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "table",
            "layout": _LAYOUT,
            "target": self.target,
            "columns": list(self.columns),
            "numeric": list(self.numeric),
            "categorical": {c: list(self.categories[c]) for c in self.categorical},
            "medians": {c: self.medians[c] for c in self.numeric},
            "indicators": list(self.indicators),
            "left_out": dict(self.left_out),
            "missing": {c: int(n) for c, n in self.missing.items()},
            "unlabelled": int(self.unlabelled),
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableSchema:
        # numeric and feature_names are derived; they are stored for readers of the JSON
        if data.get("layout") != _LAYOUT:
            raise DataError(
                "the model file's table encoding predates missing-value imputation; retrain the model "
                "with this version of trainground"
            )
        categories = {str(c): tuple(str(v) for v in vs) for c, vs in data["categorical"].items()}
        return cls(
            target=str(data["target"]), columns=tuple(data["columns"]), categories=categories,
            medians={str(c): float(v) for c, v in data["medians"].items()},
            indicators=tuple(data.get("indicators", ())), left_out=dict(data.get("left_out", {})),
            missing={str(c): int(n) for c, n in data.get("missing", {}).items()},
            unlabelled=int(data.get("unlabelled", 0)),
        )


def load_table(
    path: str | Path, *, target: str, max_categories: int = 50, ignore: Sequence[str] = (),
    declared_kind: Literal["class", "regression"] | None = None,
) -> IndexedDataset:
    """Load a CSV or Parquet table as a dataset; every other usable column is a feature.

    Args:
        path: the ``.csv`` or ``.parquet`` file.
        target: the label column; labels may be text, integers, floats or booleans.
        max_categories: most distinct values a text column may have to be one-hot encoded;
            one with more is free text and left out.
        ignore: columns that are not features.
        declared_kind: what the user declared the target to be (see :func:`frame_to_dataset`).

    Returns:
        A ``"table"`` dataset of the labelled rows whose ``index`` is the 0-based data row,
        whose ``schema`` is the :class:`TableSchema` used to encode it, and whose
        ``unlabelled`` rows are those without a label.
    """
    frame = read_table(path)
    return frame_to_dataset(frame, target=target, source=str(path), max_categories=max_categories, ignore=ignore,
                            declared_kind=declared_kind)


def frame_to_dataset(
    frame: pd.DataFrame, *, target: str, source: str, max_categories: int = 50, ignore: Sequence[str] = (),
    declared_kind: Literal["class", "regression"] | None = None, other_targets: Sequence[str] = (),
) -> IndexedDataset:
    """Check and encode an in-memory table (what :func:`load_table` does after reading).

    Numeric medians are taken over the labelled rows here; :func:`fit_on_rows` takes them
    over the training split once it is known.

    Args:
        frame: the table; rows are samples.
        target: the label column.
        source: where the table came from, for messages (a ``.csv`` path names lines).
        max_categories: most distinct values a text column may have to be one-hot encoded.
        ignore: columns that are not features.
        declared_kind: None: a class column, refused when it looks continuous
            (``ContinuousTargetError``, so a caller can train it as a regression); ``"class"``: declared
            a class column by the user, not refused for looking continuous; ``"regression"``: a number
            per row (checked by ``regression_values``), ``labels`` all 0 (the caller keeps the values).
    """
    rows = RowNamer(source)
    frame = _named_columns(frame, source=source)
    columns = list(frame.columns)
    if target not in columns:
        close = difflib.get_close_matches(target, columns, n=1, cutoff=0.6)
        close += [c for c in columns if c.lower() == target.lower() and c not in close]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{source}: no target column {target!r}{hint} (columns: {', '.join(columns)})"
        )
    unknown = [c for c in ignore if c not in columns]
    if unknown:
        raise DataError(
            f"{source}: cannot ignore column(s) {', '.join(map(repr, unknown))}: not in the table "
            f"(columns: {', '.join(columns)})"
        )
    labels = frame[target]
    if declared_kind == "regression":
        from trainground.data.regression_targets import regression_values

        regression_values(labels, column=target, rows=rows)  # missing / non-numeric: one clear error
        labels = pd.Series(np.zeros(len(frame), dtype=np.int64), index=frame.index)
    else:
        check_classification_target(labels, target=target, source=source, declared=declared_kind == "class")
    labelled = labels.notna().to_numpy().copy()  # writable: it indexes tensors
    if not labelled.any():
        raise DataError(f"{source}: target column {target!r} has no labels (every cell is empty)")
    encoder = LabelEncoder.fit(labels[labelled])
    if len(encoder.classes) < 2 and declared_kind != "regression":
        raise DataError(
            f"{source}: target column {target!r} holds a single class ({encoder.classes[0]!r} "
            f"in all {int(labelled.sum())} labelled rows); classification needs at least 2 classes"
        )
    candidates = [c for c in columns if c != target and c not in ignore and c not in other_targets]
    plan = plan_columns(frame, candidates, rows=rows, max_categories=max_categories)
    features = [c for c in candidates if c in plan.numeric or c in plan.categorical]
    left_out = {c: "ignored (--ignore / data.ignore)" for c in ignore if c != target}
    left_out.update(plan.left_out)
    if not features:
        why = "; ".join(f"{c!r}: {r}" for c, r in left_out.items()) or f"only the target column {target!r}"
        raise DataError(f"{source}: no feature columns left ({why})")
    clean = _clean(frame, plan.numeric, plan.categorical, rows=rows)
    missing = {c: int(n) for c, n in clean.isna().sum().items() if n}
    schema = TableSchema(
        target=target, columns=tuple(features), categories=fit_categories(clean[list(plan.categorical)]),
        medians=fit_medians(clean.loc[labelled, list(plan.numeric)]),
        indicators=tuple(c for c in plan.numeric if missing.get(c)), left_out=left_out, missing=missing,
        unlabelled=int((~labelled).sum()),
    )
    for line in schema.notes():
        logger.warning("%s: %s", source, line)
    matrix = torch.from_numpy(transform(schema.transformer(), clean))
    positions = np.arange(len(frame))
    return IndexedDataset(
        features=matrix[labelled],
        labels=torch.from_numpy(encoder.encode(labels[labelled])),
        index=torch.from_numpy(positions[labelled]),
        encoder=encoder,
        kind="table",
        name=source,
        schema=schema,
        unlabelled=matrix[~labelled],
        unlabelled_index=torch.from_numpy(positions[~labelled]),
    )


def fit_on_rows(data: IndexedDataset, positions: np.ndarray) -> IndexedDataset:
    """``data`` with its imputation medians taken over the samples at ``positions`` only.

    Call it with the training split's positions so that no statistic of the validation
    or test rows reaches the features. Only the imputed cells change (they are where the
    missing-indicator columns are 1), so the feature layout, and any model built on it,
    stay valid. Data that is not a table with numeric columns comes back unchanged.
    """
    schema = data.schema
    if not isinstance(schema, TableSchema) or not schema.numeric:
        return data
    n_numeric = len(schema.numeric)
    block = data.features[torch.as_tensor(positions, dtype=torch.long), :n_numeric].double().numpy().copy()
    missing_rows = data.features[:, n_numeric:n_numeric + len(schema.indicators)].bool()
    where = [schema.numeric.index(c) for c in schema.indicators]
    train_missing = missing_rows[torch.as_tensor(positions, dtype=torch.long)].numpy()
    block[:, where] = np.where(train_missing, np.nan, block[:, where])
    medians = fit_medians(pd.DataFrame(block, columns=list(schema.numeric)))
    new_schema = replace(schema, medians=medians)
    return replace(
        data, schema=new_schema, features=_refill(data.features, schema, medians, where),
        unlabelled=None if data.unlabelled is None else _refill(data.unlabelled, schema, medians, where),
    )


def _refill(features: Tensor, schema: TableSchema, medians: Mapping[str, float], where: list[int]) -> Tensor:
    out = features.clone()
    n_numeric = len(schema.numeric)
    for k, column in enumerate(schema.indicators):  # one vectorised fill per imputed column
        rows = out[:, n_numeric + k] > 0.5
        out[rows, where[k]] = float(medians[column])
    return out


def encode_table(frame: pd.DataFrame, schema: TableSchema, *, source: str) -> Tensor:
    """Encode a new table (e.g. at prediction time) exactly as the training table was.

    The target column and any extra column are ignored. Missing numbers get the training
    medians; a category never seen in training is encoded as all zeros, with a warning.

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
    clean = _clean(frame, schema.numeric, schema.categorical, rows=RowNamer(source))
    for column in schema.categorical:
        known = clean[column].fillna(MISSING_CATEGORY).isin(schema.categories[column])
        unseen = int((~known).sum())
        if unseen:
            warnings.warn(
                f"{source}: column {column!r} has {count(unseen, 'value')} never seen in training, "
                f"encoded as all-zero one-hot vectors",
                stacklevel=2,
            )
    return torch.from_numpy(transform(schema.transformer(), clean))


def _clean(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], *, rows: RowNamer
) -> pd.DataFrame:
    """Numeric columns as float64 (NaN where missing), text columns as strings (NaN where missing)."""
    out: dict[str, Any] = {}
    for column in numeric:
        series = plain(frame[column], column=column, rows=rows)
        values, bad = parse_numbers(series)
        if bad.any():
            raise_bad_numbers(series, bad, column=column, rows=rows, verb="is numeric")
        infinite = np.flatnonzero(np.isinf(values))
        if len(infinite):
            notes = [str(values[i]) for i in infinite[:3]]
            raise DataError(
                f"{rows.source}: column {column!r} has {count(len(infinite), 'infinite value')}, at "
                f"{rows.describe(infinite, notes)}; fix them or drop those rows"
            )
        check_fits_float32(values, column=column, rows=rows)
        out[column] = values
    for column in categorical:
        out[column] = text_values(plain(frame[column], column=column, rows=rows)).to_numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)), columns=[*numeric, *categorical])


def _named_columns(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """The frame with text column names, refusing duplicates (``frame[c]`` must be one column)."""
    names = [str(c) for c in frame.columns]
    check_unique_names(names, source=source)
    return frame.set_axis(names, axis=1)
