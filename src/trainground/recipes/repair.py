"""``trainground repair``: diagnose, repair, retrain, compare; write the repair folder.

:func:`repair_dataset` runs the repair loop (``repair.loop``) with the sample and training
diagnosis of ``recipes.diagnose``; :func:`repair` loads a file or ``builtin:NAME`` first,
reads the test data if given, and writes the folder next to nothing of the user's:
the input file is only ever read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from trainground.data import (
    IndexedDataset,
    builtin_frame,
    load_data,
    load_features_for_prediction,
    read_table,
)
from trainground.data.builtin import PREFIX
from trainground.data.files import PARQUET_SUFFIXES
from trainground.data.validate import ContinuousTargetError
from trainground.engine import DataConfig, RunConfig
from trainground.errors import ConfigError, DataError
from trainground.recipes.diagnose import diagnose_dataset
from trainground.repair.edits import RoundLoss
from trainground.repair.fixed import FixedLabels, read_decisions
from trainground.repair.loop import MAX_ROUNDS, RepairResult, repair_loop


def repair_dataset(
    data: IndexedDataset, *, config: RunConfig | None = None, test: IndexedDataset | None = None,
    out: str | Path | None = None, overwrite: bool = False, max_rounds: int = MAX_ROUNDS,
    policies: Sequence[str] | None = None, frame: pd.DataFrame | None = None, target: str | None = None,
    output_format: str = "csv", console: Console | None = None, extra_callbacks: Sequence[Any] = (),
    repair_loss: RoundLoss = "gce", fixed: FixedLabels | None = None,
) -> RepairResult:
    """Diagnose ``data``, repair it round by round, keep the round that validates best.

    See :func:`trainground.repair.loop.repair_loop` for the arguments and the stopping rule;
    each round is a :func:`~trainground.recipes.diagnose.diagnose_dataset` run.
    """
    return repair_loop(
        data, diagnose=diagnose_dataset, config=config, test=test, out=out, overwrite=overwrite,
        max_rounds=max_rounds, policies=policies, frame=frame, target=target, output_format=output_format,
        console=console, extra_callbacks=extra_callbacks, repair_loss=repair_loss, fixed=fixed,
    )


def input_frame(source: str, data: IndexedDataset, target: str | None) -> tuple[pd.DataFrame | None, str | None, str]:
    """The input as a table for ``repaired.csv`` (None for an image folder), its label column, and the format."""
    if source.startswith(PREFIX):
        return builtin_frame(source), "label", "csv"
    path = Path(source)
    if path.is_dir():
        return None, "label", "csv"
    return read_table(path), target, "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


def load_test(spec: str | Path, data: IndexedDataset, target: str | None) -> IndexedDataset:
    """Test data encoded like ``data`` (same schema and classes); its labels are only reported."""
    spec = str(spec)
    if not spec.startswith(PREFIX) and Path(spec).is_dir():
        test = load_data(spec)
        labels = list(test.encoder.decode(test.labels.numpy()))
        features = test.features
    else:
        features, _ = load_features_for_prediction(spec, data.schema)
        frame = builtin_frame(spec) if spec.startswith(PREFIX) else read_table(spec)
        column = "label" if spec.startswith(PREFIX) else target
        if column not in frame.columns:
            raise DataError(f"{spec}: the test table has no label column {column!r}")
        labels = frame[column].tolist()
    try:
        ids = data.encoder.encode(labels)
    except KeyError as err:
        raise DataError(f"{spec}: {err.args[0]} in the training data") from None
    return IndexedDataset(features=features, labels=torch.as_tensor(ids), index=torch.arange(len(ids)),
                          encoder=data.encoder, kind=data.kind, name=spec, schema=data.schema)


def _check_paths(source: str, out: Path, test: str | None) -> None:
    # --out must never hold, or be, the user's files: --overwrite deletes the folder it names.
    out_abs = out.resolve()
    for spec, what in ((source, "the input"), (test, "the test data")):
        if spec is None or spec.startswith(PREFIX):
            continue
        path = Path(spec).resolve()
        if out_abs == path or out_abs in path.parents:
            raise ConfigError(f"--out {out} would hold {what} {spec}; choose a folder outside it")
        if path.is_file() and out_abs == path.parent:
            raise ConfigError(f"--out {out} is the folder of {what} {spec}; the repair never writes next to the input")


def _regression_refused(source: str, column: str) -> ConfigError:
    return ConfigError(f"repair relabels class columns; {column!r} is a regression target, which it cannot repair: "
                       f"`trainground diagnose {source} --target {column} --regression {column}` flags its suspicious "
                       "values (residual check)")


def repair(
    source: str | Path, *, target: str | None = None, out: str | Path, test: str | Path | None = None,
    overwrite: bool = False, config: RunConfig | None = None, max_rounds: int = MAX_ROUNDS,
    policies: Sequence[str] | None = None, console: Console | None = None, extra_callbacks: Sequence[Any] = (),
    repair_loss: RoundLoss = "gce", decisions: str | Path | None = None,
) -> RepairResult:
    """Load ``source`` (CSV/Parquet/image folder/builtin:NAME), repair it, write the folder ``out``.

    ``out`` gets ``repaired.csv`` (``.parquet`` for a Parquet input), ``quarantined.csv``,
    ``changes.csv``, ``actions.jsonl``, ``metrics.json``, ``config.yaml`` and one run
    directory per round; the input file is only read. ``decisions``: a review's changes file
    (``trainground review --export``), whose labels the repair takes as fixed (``repair.fixed``).
    """
    source = str(source)
    out = Path(out)
    _check_paths(source, out, None if test is None else str(test))
    config = config or RunConfig()
    kinds = config.data.task_kinds
    regression = next((c for c, kind in kinds.items() if kind == "regression"), None)
    try:
        if regression is not None:
            raise _regression_refused(source, regression)
        data = load_data(source, target=target, image_size=config.data.image_size,
                         max_categories=config.data.max_categories, ignore=config.data.ignore,
                         declared_kind="class" if target is not None and kinds.get(target) == "class" else None)
    except ContinuousTargetError:  # a column that looks continuous is a regression target
        raise _regression_refused(source, str(target)) from None
    config.data = DataConfig(source=source, target=target, image_size=config.data.image_size,
                             max_categories=config.data.max_categories, ignore=config.data.ignore,
                             task_kinds=dict(config.data.task_kinds))
    fixed = None if decisions is None else read_decisions(decisions)
    test_data = None if test is None else load_test(test, data, target)
    frame, column, fmt = input_frame(source, data, target)
    return repair_dataset(
        data, config=config, test=test_data, out=out, overwrite=overwrite, max_rounds=max_rounds, policies=policies,
        frame=frame, target=column, output_format=fmt, console=console, extra_callbacks=extra_callbacks,
        repair_loss=repair_loss, fixed=fixed,
    )


def print_repair(result: RepairResult, console: Console) -> None:
    """Before/after accuracy, what was changed, where the files went."""
    table = Table(title="repair", title_justify="left")
    for column in ("", "validation accuracy", "test accuracy"):
        table.add_column(column)

    def fmt(value: Any) -> str:
        return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f} %"

    table.add_row("before (round 0)", fmt(result.before["val_accuracy"]), fmt(result.before["test_accuracy"]))
    table.add_row(f"after (round {result.best_round})", fmt(result.after["val_accuracy"]),
                  fmt(result.after["test_accuracy"]))
    console.print(table)
    counts = Counter(a.action for k, a in result.actions if k <= result.best_round)
    kept = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "no change"
    console.print(f"kept round {result.best_round} of {len(result.rounds) - 1}: {kept}", highlight=False)
    console.print(f"stopped: {result.stopped}", highlight=False)
    if result.out is not None:
        files = sorted(p.name for p in result.out.iterdir() if p.is_file())
        console.print(f"repair folder: {result.out} ({', '.join(files)})", highlight=False, soft_wrap=True)
