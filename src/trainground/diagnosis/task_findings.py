"""Findings about one task of a multi-target run: per-task epoch-curve checks, task-named findings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import Finding
from trainground.diagnosis.registry import run_checks

# Checks whose verdict does not depend on the labels: run once, columns without a task suffix.
TASK_FREE = ("outliers", "near_duplicates", "data_preparation")


def epoch_tasks(epochs: pd.DataFrame | None) -> list[str]:
    """Task names of a multi-target run's epoch records (``train_loss/<task>`` columns), in order."""
    if epochs is None:
        return []
    return [c.split("/", 1)[1] for c in epochs.columns if str(c).startswith("train_loss/")]


# Training checks that read only the per-epoch curves: run once per task on its own loss curves.
EPOCH_CHECKS = ("overfitting",)


def per_task_epoch_findings(epochs: pd.DataFrame, tasks: Sequence[str]) -> list[Finding]:
    """The epoch-curve training checks (``EPOCH_CHECKS``: overfitting) on each task's own
    ``train_loss/<task>`` and ``val_loss/<task>``: one task may overfit while the sum does not."""
    findings: list[Finding] = []
    for task in tasks:
        train, val = f"train_loss/{task}", f"val_loss/{task}"
        if train not in epochs or val not in epochs:
            continue
        frame = epochs[[c for c in ("step", "epoch") if c in epochs]].copy()
        frame["train_loss"], frame["val_loss"] = epochs[train], epochs[val]
        results, _ = run_checks(Evidence(epochs=frame), list(EPOCH_CHECKS))
        findings += [for_task(f, task) for r in results for f in r.findings]
    return findings


def for_task(finding: Finding, task: str) -> Finding:
    """A dataset finding about one task: the task in its subject and its evidence."""
    if finding.check in TASK_FREE:
        return finding
    return dataclasses.replace(finding, subject=f"task:{task}/{finding.subject}",
                               message=f"[{task}] {finding.message}", evidence={**finding.evidence, "task": task})


