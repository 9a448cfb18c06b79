"""The repair folder on disk (the contract the report reads)::

    DIR/
      config.yaml           what was asked (data, model, fit, repair options)
      round_0/ round_1/ ... run directory of each round (round 0: the original data)
      repaired.csv|.parquet the input's columns, corrected labels (the user's values), and
                            trainground_weight when weights were used; excluded rows left out
      quarantined.csv       the excluded rows (quarantined or dropped duplicates), as given
      changes.csv           index, action, old_label, new_label, score, reason (one row per change)
      actions.jsonl         every action of every round (written by the loop as it goes)
      metrics.json          kind, rounds, best_round, before, after, stopped, selection (``repair.result``)
      model.safetensors     the kept round's model (a copy of round_<best_round>/model.safetensors),
                            so ``trainground predict DIR`` uses it

``changes.csv`` and the repaired tables describe the *best* round's state; ``actions.jsonl``
also holds the actions of a later round that was tried and rejected by the stopping rule.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainground.data import IndexedDataset, LabelEncoder, TableSchema
from trainground.engine.atomic import atomic_path, atomic_write_text
from trainground.errors import ConfigError
from trainground.jsonsafe import json_safe
from trainground.repair.actions import Action
from trainground.repair.edits import RepairState
from trainground.repair.result import RepairResult

WEIGHT_COLUMN = "trainground_weight"
CHANGE_COLUMNS = ("index", "action", "old_label", "new_label", "score", "reason")


def change_rows(round_: int, before: RepairState, applied: Sequence[Action], encoder: LabelEncoder) -> list[dict[str, Any]]:
    """One ``changes.csv`` row per per-sample action (labels in the user's values), tagged with its round."""
    position = {int(i): p for p, i in enumerate(before.index)}
    rows = []
    for action in applied:
        if action.target is None or action.action == "class_weights":
            continue
        old = encoder.decode([before.labels[position[int(action.target)]]])[0]
        new = {"relabel": encoder.decode([int(action.value)])[0] if action.value is not None else None,
               "reweight": old}.get(action.action)
        rows.append({"round": round_, "index": int(action.target), "action": action.action, "old_label": old,
                     "new_label": new, "score": action.score, "reason": action.reason})
    return rows


def default_frame(data: IndexedDataset, target: str) -> pd.DataFrame:
    """A table standing for the input when none is given: one column per feature (or the image
    path), the label column, row ``i`` = input index ``i``."""
    order = np.argsort(data.index.numpy())
    size = int(data.index.max()) + 1 if len(data) else 0
    if data.sources is not None:
        columns: dict[str, Any] = {"path": np.asarray(data.sources, dtype=object)[order]}
    else:
        flat = data.features.reshape(len(data), -1).numpy()[order]
        names = list(data.schema.feature_names) if isinstance(data.schema, TableSchema) else []
        if len(names) != flat.shape[1]:
            names = [f"x{j}" for j in range(flat.shape[1])]
        columns = {name: flat[:, j] for j, name in enumerate(names)}
    columns[target] = data.encoder.decode(data.labels.numpy()[order])
    frame = pd.DataFrame(columns, index=data.index.numpy()[order])
    return frame.reindex(range(size)) if size != len(frame) else frame.reset_index(drop=True)


def repaired_tables(data: IndexedDataset, state: RepairState, frame: pd.DataFrame, target: str
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(repaired, quarantined): the input's rows with corrected labels (rows without a label as
    given), and the excluded rows as given."""
    if target not in frame.columns:
        raise ConfigError(f"repair output: the input table has no column {target!r}")
    if len(state.index) and int(state.index.max()) >= len(frame):
        raise ConfigError(f"repair output: input index {int(state.index.max())} is past the table's {len(frame)} rows")
    kept = state.excluded == ""
    order = np.argsort(state.index, kind="stable")
    kept_rows = order[kept[order]]
    repaired = frame.iloc[state.index[kept_rows]].copy()
    labels = data.encoder.decode(state.labels[kept_rows])
    repaired[target] = pd.Series(labels, index=repaired.index).astype(frame[target].dtype, errors="ignore")
    if state.uses_weights:
        repaired[WEIGHT_COLUMN] = state.effective_weights()[kept_rows]
    unlabelled = getattr(data, "unlabelled_index", None)
    if unlabelled is not None and len(unlabelled):  # rows without a label stay as given (never trained on)
        repaired = pd.concat([repaired, frame.iloc[unlabelled.numpy()]]).sort_index(kind="stable")
    excluded_rows = order[~kept[order]]
    quarantined = frame.iloc[state.index[excluded_rows]].copy()
    return repaired, quarantined


def write_repair_folder(path: Path, result: RepairResult, data: IndexedDataset, *, frame: pd.DataFrame | None,
                        target: str | None, output_format: str = "csv") -> None:
    """Write ``repaired``, ``quarantined.csv``, ``changes.csv`` and ``metrics.json`` into ``path``."""
    if output_format not in ("csv", "parquet"):
        raise ConfigError(f"repair output format must be 'csv' or 'parquet', got {output_format!r}")
    if target is None:
        target = data.schema.target if isinstance(data.schema, TableSchema) else "label"
    if frame is None:
        frame = default_frame(data, target)
    repaired, quarantined = repaired_tables(data, result.state, frame, target)
    if output_format == "parquet":
        tmp = path / "repaired.parquet.tmp"
        repaired.to_parquet(tmp, index=False)
        tmp.replace(path / "repaired.parquet")
    else:
        atomic_write_text(path / "repaired.csv", repaired.to_csv(index=False))
    atomic_write_text(path / "quarantined.csv", quarantined.to_csv(index=False))
    atomic_write_text(path / "changes.csv", result.changes.to_csv(index=False))
    atomic_write_text(path / "metrics.json", json.dumps(json_safe(result.metrics()), indent=2) + "\n")
    keep_model(path, result.best_round)


def keep_model(path: Path, best_round: int) -> None:
    """Copy the kept round's ``model.safetensors`` to the repair folder (atomically), when it was saved."""
    source = path / f"round_{best_round}" / "model.safetensors"
    if source.exists():
        # atomic_path lists the copy in the folder's manifest before writing it.
        with atomic_path(path / "model.safetensors") as tmp:
            shutil.copyfile(source, tmp)

