"""Tables with several label columns (``--target fault,severity``) as a ``MultiTargetDataset``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainground.data.builtin import PREFIX, builtin_multitarget_frame
from trainground.data.dataset import IndexedDataset
from trainground.data.files import read_table
from trainground.data.labels import LabelEncoder
from trainground.data.table import fit_on_rows, frame_to_dataset
from trainground.data.tasks import MultiTargetDataset, TaskSpec
from trainground.data.validate import check_classification_target
from trainground.errors import DataError

logger = logging.getLogger("trainground.data")


def target_list(target: str | Sequence[str] | None) -> list[str] | None:
    """The label columns of a multi-target run (``"a,b"`` or ``["a", "b"]``), or None for one column."""
    if target is None:
        return None
    names = [t.strip() for t in target.split(",")] if isinstance(target, str) else [str(t).strip() for t in target]
    names = [t for t in names if t]
    if len(names) != len(set(names)):
        raise DataError(f"target: a column is named twice in {names}")
    return names if len(names) > 1 else None


def target_value(target: str) -> str | tuple[str, ...]:
    """``--target`` as ``data.target`` holds it: one column name, or a tuple of several."""
    names = target_list(target)
    return target if names is None else tuple(names)


def source_frame(spec: str | Path) -> tuple[pd.DataFrame, tuple[str, ...], str]:
    """The raw table of ``spec`` (a file or ``builtin:NAME``), the columns never used as
    features, and the data kind: what multi-target loading and event conditions read."""
    if isinstance(spec, str) and spec.startswith(PREFIX):
        return builtin_multitarget_frame(spec)
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"{path}: several targets need a table (a .csv or .parquet file)")
    return read_table(path), (), "table"


def load_multitarget(spec: str | Path, *, targets: Sequence[str], max_categories: int = 50,
                     ignore: Sequence[str] = ()) -> MultiTargetDataset:
    """One class task per column of ``targets``; every other usable column is a feature.

    Rows missing any of the targets are left out (a notice says how many). Every target is a
    classification column (at least 2 classes, not continuous).
    """
    frame, not_features, kind = source_frame(spec)
    source = str(spec)
    absent = [t for t in targets if t not in frame.columns]
    if absent:
        raise DataError(f"{source}: no target column(s) {', '.join(map(repr, absent))} "
                        f"(columns: {', '.join(map(str, frame.columns))})")
    complete = frame[list(targets)].notna().all(axis=1).to_numpy()
    if not complete.all():
        logger.warning("%s: %d row(s) miss one of the targets %s: left out of training", source,
                       int((~complete).sum()), ", ".join(targets))
        frame = frame.copy()
        frame.loc[~complete, targets[0]] = np.nan  # the table loader then keeps them aside
    others = [c for c in not_features if c not in targets]
    base = frame_to_dataset(frame, target=targets[0], source=source, max_categories=max_categories,
                            ignore=[*ignore, *others, *targets[1:]])
    if base.schema is not None:  # the other targets are labels, not columns left out of the features
        left_out = {c: why for c, why in base.schema.left_out.items() if c not in targets}
        base = replace(base, schema=replace(base.schema, left_out=left_out))
    rows = base.index.numpy()
    specs, tensors, encoders = [TaskSpec(targets[0], "class", base.num_classes, base.encoder.classes)], \
        {targets[0]: base.labels}, {targets[0]: base.encoder}
    for name in targets[1:]:
        labels = frame[name].iloc[rows].reset_index(drop=True)
        check_classification_target(labels, target=name, source=source)
        encoder = LabelEncoder.fit(labels)
        if len(encoder.classes) < 2:
            raise DataError(f"{source}: target column {name!r} holds a single class ({encoder.classes[0]!r}); "
                            "classification needs at least 2 classes")
        specs.append(TaskSpec(name, "class", len(encoder.classes), encoder.classes))
        tensors[name] = torch.from_numpy(encoder.encode(labels))
        encoders[name] = encoder
    return MultiTargetDataset(base.features, tensors, base.index, tuple(specs), kind=kind, name=source,
                              schema=base.schema, encoders=encoders)


def fit_multitarget_on_rows(data: MultiTargetDataset, positions: np.ndarray) -> MultiTargetDataset:
    """:func:`~trainground.data.table.fit_on_rows` (imputation medians from the training rows only)."""
    if not isinstance(data.features, torch.Tensor):
        return data
    view = IndexedDataset(data.features, torch.zeros(len(data), dtype=torch.long), data.index,
                          LabelEncoder((0,)), "table", data.name, schema=data.schema)
    fitted = fit_on_rows(view, positions)
    return replace(data, features=fitted.features, schema=fitted.schema)
