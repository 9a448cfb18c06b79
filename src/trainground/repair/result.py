"""What a repair returns and writes as ``metrics.json``: one shape for every kind of repair.

``metrics.json``::

    kind          "data" (repair of a dataset) or "training" (repair of a run)
    rounds        one entry per round: round, val_accuracy, test_accuracy, trainings,
                  actions ({kind: count}), run_dir, comparison (the paired test against the
                  round kept before it; None for round 0), skipped_policies ({policy: why}),
                  and for data repairs class_counts ({label: {given, before, after}}: the
                  training rows' mass per class as given, before the round's actions and
                  after them, weights counted) and findings (why a policy declined, e.g.
                  the model is too weak to relabel)
    best_round    the round kept (``selection.keep_best``); its model is ``model.safetensors``
                  of the repair folder and of ``round_<best_round>/``
    before/after  val_accuracy and test_accuracy of round 0 and of the kept round
    stopped       why the loop stopped
    selection     the rule that chose the kept round (test and level)
    reference     data repairs that trained a repair round: the reference round (no edit,
                  trained as the repair rounds are: the comparator in place of round 0;
                  ``repair.rounds``): role, val_accuracy, test_accuracy, trainings, samples,
                  seconds; a comparison's ``against`` is -1 for it. None when no repair
                  round was trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trainground.data import IndexedDataset
from trainground.repair.actions import Action
from trainground.repair.edits import RepairState
from trainground.repair.selection import ALPHA, MARGIN

SELECTION = {"test": "exact one-sided sign test on the validation rows (McNemar's test with one task)",
             "alpha": ALPHA, "tie": "the earlier round is kept",
             "label_edits": "a round with relabels is also kept when Tango's score test shows it is not worse than "
                            "the reference round (round 0 in training repairs) and the kept round by the margin or more",
             "comparator": "the reference round (no edit, trained as the repair rounds are: same training share, "
                           "own validation split, same seed) stands in for round 0; when no round is kept the "
                           "output is round 0 (data repairs)",
             "margin": MARGIN}


def repair_metrics(kind: str, rounds: list[dict[str, Any]], best_round: int, stopped: str,
                   reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``metrics.json`` of a repair folder (see the module docstring)."""
    pick = ("val_accuracy", "test_accuracy")
    return {"kind": kind, "rounds": rounds, "best_round": best_round,
            "before": {k: rounds[0].get(k) for k in pick}, "after": {k: rounds[best_round].get(k) for k in pick},
            "stopped": stopped, "selection": SELECTION, "reference": reference}


@dataclass
class RepairResult:
    """What a data repair did and how much it helped.

    Args:
        rounds: one dict per round (``metrics.json``'s ``rounds``).
        best_round: the round kept (``selection.keep_best``: a later round only when significantly
            better, or, for label edits, not worse than round 0 by more than the margin).
        before / after: validation (and test) accuracy of round 0 and of the kept round.
        stopped: why the loop stopped.
        state: the repair state of the kept round (labels, exclusions, weights).
        changes: ``changes.csv`` (the per-sample changes up to the kept round).
        actions: ``(round, action)`` of every applied action, rejected rounds included.
        model: the kept round's trained model.
        data: the repaired training data of the kept round (excluded rows left out).
        out: the repair folder, or None.
    """

    rounds: list[dict[str, Any]]
    best_round: int
    before: dict[str, Any]
    after: dict[str, Any]
    stopped: str
    state: RepairState
    changes: pd.DataFrame
    actions: list[tuple[int, Action]] = field(default_factory=list)
    model: torch.nn.Module | None = field(default=None, repr=False)
    data: IndexedDataset | None = field(default=None, repr=False)
    out: Path | None = None
    seconds: float = 0.0
    reference: dict[str, Any] | None = None

    def metrics(self) -> dict[str, Any]:
        return repair_metrics("data", self.rounds, self.best_round, self.stopped, self.reference)
