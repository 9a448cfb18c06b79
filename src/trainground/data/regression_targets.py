"""Regression targets of a table: which columns are numbers to predict, and their values checked.

A target column is a class column or a regression target. The user says which
(``data.task_kinds: {price: regression}``, ``--regression price``); a column without a
declared kind is a regression target when it looks like a measurement
(:func:`~trainground.data.validate.looks_continuous`: numeric, fractional values, at least 20
distinct ones), else a class column. That rule was fixed before this module was written and
is the one that already refused such columns as classes, so it changes only inputs that were
refused before; the choice is printed, and a declared kind always wins.

Standardisation (``TaskSpec.scale``): the mean and standard deviation of a regression
target over the training rows. The head is trained on ``(y - mean) / std`` and its outputs
are turned back into the original units inside the model, so metrics and predictions are in
the user's units.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
import pandas as pd
import torch

from trainground.data.columns import RowNamer
from trainground.data.tasks import MultiTargetDataset
from trainground.data.validate import check_fits_float32, looks_continuous
from trainground.errors import DataError

logger = logging.getLogger("trainground.data")

TargetKind = Literal["class", "regression"]


def resolve_task_kinds(frame: pd.DataFrame, targets: Sequence[str], declared: Mapping[str, str], *,
                       source: str) -> dict[str, TargetKind]:
    """``{target: "class" | "regression"}``: the declared kind, else the a-priori rule (module docstring).

    A kind declared for a column that is not a target is refused (a typo would otherwise pass unseen).
    """
    stray = [c for c in declared if c not in targets]
    if stray:
        raise DataError(f"{source}: data.task_kinds names {', '.join(map(repr, stray))}, which "
                        f"{'is' if len(stray) == 1 else 'are'} not a target (targets: {', '.join(targets)})")
    kinds: dict[str, TargetKind] = {}
    for name in targets:
        kind = declared.get(name)
        if kind not in (None, "class", "regression"):
            raise DataError(f"{source}: data.task_kinds[{name!r}] is {kind!r}; known kinds: class, regression")
        if kind is None and name in frame.columns and looks_continuous(frame[name]):
            kind = "regression"
            values = frame[name].dropna()
            logger.warning("%s: target %r trained as a regression (auto: numeric with fractional values, %d distinct "
                           "of %d); to train it as classes say data.task_kinds: {%s: class}", source, name,
                           values.nunique(), len(values), name)
        kinds[name] = kind or "class"  # type: ignore[assignment]
    return kinds


def regression_values(series: pd.Series, *, column: str, rows: RowNamer) -> np.ndarray:
    """The target's values as float32; a missing, non-numeric or non-finite cell is one clear error."""
    missing = np.flatnonzero(series.isna().to_numpy())
    if len(missing):
        raise DataError(f"{rows.source}: regression target {column!r} is missing at {rows.describe(missing)} "
                        f"({len(missing)} row(s)); fill or drop those rows (a regression target needs a number "
                        "in every row)")
    numbers = pd.to_numeric(series, errors="coerce") if not pd.api.types.is_bool_dtype(series) else series * np.nan
    bad = np.flatnonzero(numbers.isna().to_numpy())
    if len(bad):
        notes = [repr(series.iloc[i]) for i in bad[:3]]
        raise DataError(f"{rows.source}: regression target {column!r} holds non-numeric values at "
                        f"{rows.describe(bad, notes)}; a regression target must be a number in every row")
    values = numbers.to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        notes = [str(values[i]) for i in bad[:3]]
        raise DataError(f"{rows.source}: regression target {column!r} is not finite at {rows.describe(bad, notes)}")
    check_fits_float32(values, column=column, rows=rows)
    return values.astype(np.float32)


def with_target_scales(data: MultiTargetDataset, positions: np.ndarray | torch.Tensor) -> MultiTargetDataset:
    """``data`` with each regression task's ``scale`` (mean, std) taken over the rows at ``positions``
    (the training split: no statistic of the validation or test rows reaches the model)."""
    pos = torch.as_tensor(positions, dtype=torch.long)
    tasks = []
    for spec in data.tasks:
        if spec.kind == "regression":
            values = data.targets[spec.name][pos].double()
            std = float(values.std()) if len(values) > 1 else 0.0
            # A constant target (std 0) keeps unit scale: its standardised values are all 0 anyway.
            spec = replace(spec, scale=(float(values.mean()), std if std > 0 and np.isfinite(std) else 1.0))
        tasks.append(spec)
    return replace(data, tasks=tuple(tasks))
