"""The loss of a run from its ``loss:`` section: event weights and the coarse grouping read from the table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainground.data import source_frame
from trainground.data.builtin import builtin_label_name
from trainground.data.tasks import TaskSpec
from trainground.engine.task_kinds import task_kind
from trainground.errors import ConfigError, DataError
from trainground.losses import LossConfig, build_loss, build_task_loss
from trainground.losses.sample_weights import SampleWeights


def event_weights(config: LossConfig, source: str, index: np.ndarray) -> SampleWeights | None:
    """Weights of the samples with input rows ``index``: a row meeting ``events[k].when`` counts
    ``events[k].weight`` times (the largest, when it meets several); None without events."""
    if not config.events:
        return None
    frame = source_frame(source)[0]
    weight = np.ones(len(frame))
    for k, event in enumerate(config.events):
        try:
            hit = np.asarray(frame.eval(event.when), dtype=bool).reshape(-1)
        except Exception as err:  # pandas raises many kinds (UndefinedVariableError, SyntaxError...)
            raise ConfigError(f"loss.events[{k}].when: cannot evaluate {event.when!r} on {source} "
                              f"({type(err).__name__}: {err}); columns: {', '.join(map(str, frame.columns[:20]))}"
                              ) from None
        if hit.shape != (len(frame),):
            raise ConfigError(f"loss.events[{k}].when: {event.when!r} is not a condition per row")
        weight = np.where(hit, np.maximum(weight, event.weight) if event.weight >= 1 else event.weight, weight)
    rows = np.asarray(index, dtype=np.int64)
    return SampleWeights(rows, weight[rows])


def coarse_tree(config: LossConfig, source: str, classes: Sequence[Any], column: str, index: np.ndarray
                ) -> dict[int, Any] | None:
    """``{fine class id: coarse label}`` of ``loss.hierarchy`` (a table column read on the training
    rows ``index``, or a CSV ``fine,coarse``); None unless ``loss.name`` is hierarchical."""
    h = config.hierarchy
    if config.name != "hierarchical" or h is None:
        return None
    lookup = {str(c): i for i, c in enumerate(classes)}
    if h.coarse_file is not None:
        path = Path(h.coarse_file)
        if not path.is_file():
            raise ConfigError(f"loss.hierarchy.coarse_file: {path}: no such file")
        table = pd.read_csv(path, dtype=str)
        if list(table.columns[:2]) != ["fine", "coarse"]:
            raise DataError(f"{path}: needs the columns fine,coarse; it has {', '.join(table.columns)}")
        pairs = zip(table["fine"], table["coarse"], strict=True)
    else:
        frame = source_frame(source)[0]
        if h.coarse_column not in frame.columns:
            raise DataError(f"{source}: no coarse column {h.coarse_column!r} (loss.hierarchy.coarse_column)")
        rows = frame.iloc[np.asarray(index, dtype=np.int64)]
        pairs = zip(rows[column].astype(str), rows[h.coarse_column].astype(str), strict=True)
    tree: dict[int, Any] = {}
    for fine, coarse in pairs:
        fid = lookup.get(str(fine))
        if fid is None:
            continue  # a label absent from the training data
        if tree.setdefault(fid, coarse) != coarse:
            raise DataError(f"loss.hierarchy: class {fine!r} of {column!r} sits under two coarse classes "
                            f"({tree[fid]!r} and {coarse!r}); each fine class needs one coarse class")
    missing = [classes[i] for i in range(len(classes)) if i not in tree]
    if missing:
        raise DataError(f"loss.hierarchy: no coarse class for {', '.join(map(repr, missing[:5]))} of {column!r}")
    return tree


def run_loss(config: LossConfig, source: str, train: Any, *, target: str | None = None) -> nn.Module:
    """The loss ``run_fit`` trains with: single-target ``build_loss`` or a multi-task loss over ``train.tasks``."""
    index = train.index.numpy()
    weights = event_weights(config, source, index)
    tasks: tuple[TaskSpec, ...] | None = getattr(train, "tasks", None)
    if tasks is None:
        classes = train.encoder.classes
        column = target or getattr(train.schema, "target", None) or "label"
        if source.startswith("builtin:"):
            column = builtin_label_name(source)  # the frame's label column as source_frame names it
        tree = coarse_tree(config, source, classes, column, index)
        return build_loss(config, train.labels.numpy(), num_classes=train.num_classes, sample_weights=weights,
                          tree=tree)
    fine = (config.hierarchy.task if config.hierarchy and config.hierarchy.task else None) or tasks[0].name
    fine_spec = next((t for t in tasks if t.name == fine), None)
    if config.name == "hierarchical" and fine_spec is None:
        raise ConfigError(f"loss.hierarchy.task: no task {fine!r}; tasks: {[t.name for t in tasks]}")
    tree = None if fine_spec is None else coarse_tree(config, source, fine_spec.classes or (), fine, index)
    others = {t.name: task_kind(t.kind).default_loss(t) for t in tasks if t.kind != "class"}
    targets = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in train.targets.items()}
    return build_task_loss(config, tasks, targets, sample_weights=weights, tree=tree, other_losses=others)

