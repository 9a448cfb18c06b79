"""Tables with several label columns (``--target fault,severity``) as a ``MultiTargetDataset``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainground.data.builtin import PREFIX, builtin_multitarget_frame
from trainground.data.columns import RowNamer
from trainground.data.dataset import IndexedDataset
from trainground.data.files import read_table
from trainground.data.labels import LabelEncoder
from trainground.data.load import load_data
from trainground.data.regression_targets import regression_values, resolve_task_kinds
from trainground.data.table import fit_on_rows, frame_to_dataset
from trainground.data.tasks import MultiTargetDataset, TaskSpec
from trainground.data.validate import ContinuousTargetError, check_classification_target
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
                     ignore: Sequence[str] = (), kinds: Mapping[str, str] | None = None) -> MultiTargetDataset:
    """One task per column of ``targets``; every other usable column is a feature.

    ``kinds`` declares a target ``"class"`` or ``"regression"``; an undeclared one is a regression
    target when it looks continuous, else a class column (``data.regression_targets``). Rows
    missing a class target are left out (a notice says how many); a regression target must have
    a number in every row (else one error naming the column and the rows). A class target has at
    least 2 classes.
    """
    frame, not_features, kind = source_frame(spec)
    source = str(spec)
    absent = [t for t in targets if t not in frame.columns]
    if absent:
        raise DataError(f"{source}: no target column(s) {', '.join(map(repr, absent))} "
                        f"(columns: {', '.join(map(str, frame.columns))})")
    task_kinds = resolve_task_kinds(frame, targets, kinds or {}, source=source)
    rows_named = RowNamer(source)
    values = {t: regression_values(frame[t], column=t, rows=rows_named) for t in targets
              if task_kinds[t] == "regression"}
    classes = [t for t in targets if task_kinds[t] == "class"]
    base_target = classes[0] if classes else targets[0]
    complete = frame[classes].notna().all(axis=1).to_numpy() if classes else np.ones(len(frame), dtype=bool)
    if not complete.all():
        logger.warning("%s: %d row(s) miss one of the targets %s: left out of training", source,
                       int((~complete).sum()), ", ".join(classes))
        frame = frame.copy()
        frame.loc[~complete, base_target] = np.nan  # the table loader then keeps them aside
    others = [c for c in not_features if c not in targets]
    base = frame_to_dataset(frame, target=base_target, source=source, max_categories=max_categories,
                            ignore=[*ignore, *others], other_targets=[t for t in targets if t != base_target],
                            declared_kind=task_kinds[base_target] if base_target in (kinds or {}) or not classes
                            else None)
    rows = base.index.numpy()
    specs, tensors, encoders = [], {}, {}
    for name in targets:
        if task_kinds[name] == "regression":
            specs.append(TaskSpec(name, "regression"))
            tensors[name] = torch.from_numpy(values[name][rows])
            continue
        if name == base_target:
            labels, encoder = base.labels, base.encoder
        else:
            column = frame[name].iloc[rows].reset_index(drop=True)
            check_classification_target(column, target=name, source=source, declared=name in (kinds or {}))
            encoder = LabelEncoder.fit(column)
            labels = torch.from_numpy(encoder.encode(column))
        if len(encoder.classes) < 2:
            raise DataError(f"{source}: target column {name!r} holds a single class ({encoder.classes[0]!r}); "
                            "classification needs at least 2 classes")
        specs.append(TaskSpec(name, "class", len(encoder.classes), encoder.classes))
        tensors[name] = labels
        encoders[name] = encoder
    return MultiTargetDataset(base.features, tensors, base.index, tuple(specs), kind=kind, name=source,
                              schema=base.schema, encoders=encoders)


def load_targets(spec: str | Path, *, target: str | Sequence[str] | None, kinds: Mapping[str, str] | None = None,
                 image_size: int | None = None, stream_images: bool | None = None, max_categories: int = 50,
                 ignore: Sequence[str] = ()) -> IndexedDataset | MultiTargetDataset:
    """The data of a run: several targets, or one regression target, as a ``MultiTargetDataset``;
    one class column (or an image folder, a builtin) as an ``IndexedDataset``.

    One column without a declared kind is loaded as a class column; if it looks continuous
    (the rule of ``data.regression_targets``) it is trained as a regression instead, and a notice says so.
    """
    kinds = dict(kinds or {})
    targets = target_list(target)
    single = target if isinstance(target, str) or target is None else (list(target) or [None])[0]
    if targets is None and single is not None and kinds.get(single) == "regression":
        targets = [single]
    if targets is not None:
        return load_multitarget(spec, targets=targets, max_categories=max_categories, ignore=ignore, kinds=kinds)
    if kinds and (single is None or set(kinds) != {single}):
        raise DataError(f"{spec}: data.task_kinds names {', '.join(map(repr, kinds))}, which is not the target "
                        f"{single!r}")
    try:
        return load_data(spec, target=single, image_size=image_size, stream_images=stream_images,
                         max_categories=max_categories, ignore=ignore,
                         declared_kind="class" if kinds.get(single or "") == "class" else None)
    except ContinuousTargetError:
        assert single is not None
        return load_multitarget(spec, targets=[single], max_categories=max_categories, ignore=ignore, kinds=kinds)


def fit_multitarget_on_rows(data: MultiTargetDataset, positions: np.ndarray) -> MultiTargetDataset:
    """:func:`~trainground.data.table.fit_on_rows` (imputation medians from the training rows only)."""
    if not isinstance(data.features, torch.Tensor):
        return data
    view = IndexedDataset(data.features, torch.zeros(len(data), dtype=torch.long), data.index,
                          LabelEncoder((0,)), "table", data.name, schema=data.schema)
    fitted = fit_on_rows(view, positions)
    return replace(data, features=fitted.features, schema=fitted.schema)
