"""Labels a person decided (``trainground review``), taken by the repair as fixed.

A reviewed sample keeps the label the reviewer chose, or stays out of training if they
excluded it, in every round: the decisions are applied to the repair state before round 0
(so every round, the one finally kept included, trains with them), and any later policy
action on a reviewed sample is dropped. The file is the review's changes record
(``trainground review RUN --export corrected.csv`` writes ``corrected.changes.csv``):
columns ``index``, ``action`` (accept, relabel, keep or exclude), ``new_label`` and,
optionally, ``applied`` (rows with ``applied`` false are conflicts between reviewers and
are not taken).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainground.data import LabelEncoder
from trainground.errors import DataError
from trainground.repair.actions import Action

REASON = "reviewer decision"
_LABELLING = ("accept", "relabel", "keep")


@dataclass(frozen=True)
class FixedLabels:
    """Reviewed samples by input index: the label each keeps (user's value, as text), and those excluded."""

    labels: dict[int, str]
    excluded: frozenset[int]

    @property
    def indices(self) -> frozenset[int]:
        return frozenset(self.labels) | self.excluded


def read_decisions(path: str | Path) -> FixedLabels:
    """The decisions of a review changes file (see the module docstring)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as a decisions CSV ({type(err).__name__}: {err})") from None
    missing = [c for c in ("index", "action", "new_label") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: lacks the column(s) {', '.join(missing)} of a review changes file "
                        "(trainground review RUN --export corrected.csv writes corrected.changes.csv)")
    if "applied" in frame.columns:
        frame = frame[frame["applied"].str.lower().isin(("true", "1"))]
    labels: dict[int, str] = {}
    excluded: set[int] = set()
    for row, record in zip(frame.index, frame.to_dict("records"), strict=True):
        where = f"{path}: row {row + 2}"  # the header is line 1
        try:
            index = int(record["index"])
        except ValueError:
            raise DataError(f"{where}: index {record['index']!r} is not a sample index") from None
        action = record["action"].strip()
        if action == "exclude":
            excluded.add(index)
            labels.pop(index, None)
        elif action in _LABELLING:
            if record["new_label"] == "":
                raise DataError(f"{where}: action {action} without a new_label")
            labels[index] = record["new_label"]
            excluded.discard(index)
        else:
            raise DataError(f"{where}: unknown action {action!r} (accept, relabel, keep or exclude)")
    return FixedLabels(labels=labels, excluded=frozenset(excluded))


def fixed_actions(fixed: FixedLabels, encoder: LabelEncoder, known: Sequence[int]) -> list[Action]:
    """The decisions as relabel / quarantine actions on the samples of ``known`` (input indices)."""
    ids = {str(c): i for i, c in enumerate(encoder.classes)}
    present = {int(i) for i in known}
    actions = []
    for index, label in sorted(fixed.labels.items()):
        if index not in present:
            continue
        if label not in ids:
            raise DataError(f"decisions: sample {index} is given the label {label!r}, which the data does not have "
                            f"(labels: {', '.join(map(str, encoder.classes))})")
        actions.append(Action("relabel", "review", REASON, target=index, value=ids[label]))
    actions += [Action("quarantine", "review", REASON, target=i) for i in sorted(fixed.excluded) if i in present]
    return actions


def drop_fixed(actions: Sequence[Action], fixed: FixedLabels | None) -> list[Action]:
    """``actions`` without those on a reviewed sample (a reviewer's decision is never relabelled again)."""
    if fixed is None:
        return list(actions)
    reviewed = fixed.indices
    return [a for a in actions if a.target is None or a.action == "class_weights" or int(a.target) not in reviewed]
