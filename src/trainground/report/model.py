"""What the report knows about a run or a repair folder: typed records read from disk once.

Every field that comes from one file is ``None`` when that file is missing or unreadable;
``notes`` then says so in one short sentence, and the section that needs it is omitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainground.diagnosis.findings import Finding


@dataclass
class RunReport:
    """One run directory (demo, fit, diagnose, or one round of a repair).

    Attributes:
        path: the run directory.
        config: ``config.yaml`` as a dict (data, model, fit, loss, guard).
        model_spec: the model spec stored in ``model.safetensors`` (name, hidden, ...).
        data_schema: the data schema stored there (``kind``, ``columns`` or image size).
        classes: class values in the order of the model's outputs.
        parameters: number of model parameters (from the weights file header).
        steps: one row per optimizer step (``step, epoch, loss, lr, grad_norm,
            clip_threshold, accum_k, skipped``).
        epochs: one row per epoch (``step, epoch, train_loss, train_accuracy, val_loss, ...``).
        test: the last ``test`` record of ``metrics.jsonl`` (``test_accuracy``).
        layers: ``layers.parquet`` in long format (``step, epoch, layer, stat, value``).
        findings: ``findings.json``, most severe first.
        sample_issues: ``sample_issues.csv``, one row per sample.
        actions: ``actions.jsonl`` records (``step, action, reason, evidence``).
        lr_find: ``lr_find.json`` of ``trainground lr-find`` (the lr range test's curve).
        explanations: ``explanations.json`` of ``trainground explain`` (attributions).
        notes: what was missing or unreadable, one sentence each.
    """

    path: Path
    config: dict[str, Any] | None = None
    model_spec: dict[str, Any] | None = None
    data_schema: dict[str, Any] | None = None
    classes: list[Any] | None = None
    parameters: int | None = None
    steps: pd.DataFrame | None = None
    epochs: pd.DataFrame | None = None
    test: dict[str, Any] | None = None
    layers: pd.DataFrame | None = None
    findings: list[Finding] | None = None
    sample_issues: pd.DataFrame | None = None
    actions: list[dict[str, Any]] | None = None
    lr_find: dict[str, Any] | None = None
    explanations: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def final_epoch(self) -> dict[str, Any]:
        """The last epoch record ({} when there is none)."""
        if self.epochs is None or self.epochs.empty:
            return {}
        return {k: v for k, v in self.epochs.iloc[-1].items() if pd.notna(v)}


@dataclass
class RepairReport:
    """A repair output folder (``metrics.json`` with ``rounds``; see the repair contract).

    Attributes:
        path: the repair folder.
        config: ``config.yaml`` (data, model, fit, repair options).
        rounds: one record per round (``round, val_accuracy, test_accuracy, trainings,
            actions, run_dir``).
        best_round: the round whose model was kept.
        before: metrics of the original data (``val_accuracy, test_accuracy``).
        after: metrics of the best round.
        stopped: why the repair loop stopped.
        reference: the reference round (no edit, trained as the repair rounds are: the keep
            rule's comparator in place of round 0), or None.
        changes: ``changes.csv`` (``index, action, old_label, new_label, score, reason``).
        actions: ``actions.jsonl`` of every round (``step`` is the round).
        round_0: the diagnosis run that drove the repair.
        best: the best round's run (None when it is round 0 or missing).
        notes: what was missing or unreadable.
    """

    path: Path
    config: dict[str, Any] | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    best_round: int | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    reference: dict[str, Any] | None = None
    changes: pd.DataFrame | None = None
    actions: list[dict[str, Any]] | None = None
    round_0: RunReport | None = None
    best: RunReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


Report = RunReport | RepairReport
