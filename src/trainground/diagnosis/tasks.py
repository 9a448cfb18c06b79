"""The dataset diagnosis of a multi-target run: one training, per-task label issues and findings.

One multi-head training (``fit`` on a ``MultiTargetDataset``) records every sample once per
class task (``RecordSamples(task=...)``, one early-learning window each, all at the best
summed validation loss). Each class task is then diagnosed like a single-target dataset
(:func:`~trainground.diagnosis.dataset.conclude_samples` on a view of the data with that
task's labels), so label issues, ambiguity, class imbalance and weak groups are per task;
outliers and near duplicates do not depend on a label and are computed once. The table
has ``index``, then per task ``given_label_<task>, predicted_label_<task>,
suggested_label_<task>, is_<issue>_issue_<task>, <issue>_score_<task>``, then the task-free
``is_outlier_issue`` and ``is_near_duplicate_issue`` columns. Dataset findings name their
task in the subject (``task:severity/class:4``); the overfitting check also runs on each
task's own loss curves (a task can overfit while the summed loss does not).

Regression tasks get the residual check of ``diagnosis.target_outliers`` on their
early-learning predictions (``EarlyTargetWindow``): columns ``given_label_<task>`` (the value),
``predicted_label_<task>``, ``is_label_issue_<task>`` and ``label_score_<task>``. The label
checks of classes (confident learning, neighbours, ambiguity, class imbalance) need class
probabilities and do not apply to them (``REGRESSION_NOTE``).

Not done here (said plainly): the second pass and the linear view of the single-target
diagnosis; without any class task, the outlier and near-duplicate checks (they run with a
class task's evidence) are skipped and listed in ``skipped_checks``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trainground.data import (
    IndexedDataset,
    LabelEncoder,
    fit_multitarget_on_rows,
    stratified_split,
    with_target_scales,
)
from trainground.data.tasks import MultiTargetDataset, TaskSpec
from trainground.diagnosis.callback import DiagnosisCallback
from trainground.diagnosis.competence import measure_competence
from trainground.diagnosis.dataset import (
    DatasetDiagnosisConfig,
    conclude_samples,
    steps_frame,
)
from trainground.diagnosis.early_learning import EarlyLearningWindow
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import Finding, write_findings
from trainground.diagnosis.label_probs import embed
from trainground.diagnosis.target_outliers import TargetIssues
from trainground.diagnosis.target_window import EarlyTargetWindow
from trainground.diagnosis.task_findings import (
    TASK_FREE,
    for_task,
    per_task_epoch_findings,
)
from trainground.engine import Callback, FitResult, RunDir, fit
from trainground.engine.atomic import atomic_write_text
from trainground.engine.evaluate import predict_task_outputs
from trainground.engine.rng import seed_everything
from trainground.engine.sample_recording import RecordSamples
from trainground.errors import DataError
from trainground.gradients import TaskGradientConfig
from trainground.models import build_multitask_model
from trainground.monitors.samples import SampleRecorder

TASK_FREE_COLUMNS = ("is_outlier_issue", "outlier_score", "is_near_duplicate_issue", "near_duplicate_score")
REGRESSION_NOTE = ("residual check only (target_outliers: robust z of the early-learning residual > 3.5); the label "
                   "checks of classes (confident learning, neighbours, ambiguity, class balance) need class "
                   "probabilities and do not apply to a regression target")


@dataclass
class TaskDiagnosis:
    """What :func:`diagnose_tasks` found: the merged table, every task's own table, findings, the run."""

    table: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    findings: list[Finding]
    fit: FitResult
    seconds: float
    run_dir: RunDir | None = None
    early_learning_epoch: int | None = None
    skipped_checks: list[str] = field(default_factory=list)


def task_view(data: MultiTargetDataset, task: str) -> IndexedDataset:
    """``data`` as a single-target dataset with ``task``'s labels (what the sample checks read)."""
    spec = data.task(task)
    encoder = data.encoders.get(task) or LabelEncoder(tuple(spec.classes or range(int(spec.num_classes or 0))))
    return IndexedDataset(data.features, data.targets[task].long(), data.index, encoder, data.kind,  # type: ignore[arg-type]
                          f"{data.name} [{task}]", schema=data.schema)


def _class_tasks(data: MultiTargetDataset) -> list[TaskSpec]:
    tasks = [t for t in data.tasks if t.kind == "class"]
    if not tasks and not any(t.kind == "regression" for t in data.tasks):
        raise DataError(f"{data.name}: no class or regression task to diagnose (tasks: {data.task_names})")
    return tasks


def regression_table(data: MultiTargetDataset, task: str, issues: TargetIssues, predicted: torch.Tensor) -> pd.DataFrame:
    """A regression task's rows: the given value, the final prediction, the residual check's flag and score."""
    return pd.DataFrame({"index": data.index.numpy(), "given_label": data.targets[task].numpy(),
                         "predicted_label": predicted.reshape(len(data)).numpy(),
                         "is_label_issue": issues.is_issue.numpy(), "label_score": issues.score.numpy()})


def diagnose_tasks(
    data: MultiTargetDataset, config: DatasetDiagnosisConfig | None = None, *, model: torch.nn.Module | None = None,
    run_dir: RunDir | str | Path | None = None, callbacks: Sequence[Callback] = (),
    loss_fn: torch.nn.Module | None = None, tasks: TaskGradientConfig | None = None,
) -> TaskDiagnosis:
    """Train once on ``data`` while recording every sample per class task, then check each task.

    Args:
        data: the samples (every one gets a row).
        config: training options (``fit``, ``model``, ``patience``, ``training_checks``, ``guard``).
        model: a model returning ``{task: output}``; the built-in trunk with one head per task when None.
        run_dir: where the run is written (``sample_issues.csv``, ``findings.json``, metrics, model).
        callbacks: more watchers of the training.
        loss_fn: the multi-task loss (each task's default loss, summed, when None).
        tasks: per-task gradients (norms and cosines logged, per-task clip, PCGrad), or None.
    """
    started = time.perf_counter()
    config = config or DatasetDiagnosisConfig()
    fit_config = config.fit
    class_tasks = _class_tasks(data)
    if len(data) < 10:
        raise DataError(f"{data.name}: {len(data)} samples; diagnosis needs at least 10")
    run = None if run_dir is None else (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir))
    train_pos, val_pos = stratified_split(data.labels.numpy(), fraction=fit_config.val_fraction, seed=fit_config.seed)
    data = fit_multitarget_on_rows(data, train_pos)
    if any(t.kind == "regression" and t.scale is None for t in data.tasks):
        data = with_target_scales(data, train_pos)
    train, val = data.subset(train_pos), data.subset(val_pos)
    if model is None:
        seed_everything(fit_config.seed)
        model = build_multitask_model(config.model, input_shape=data.input_shape,
                                      widths={t.name: t.out_features for t in data.tasks},
                                      train_features=train.features, kind=data.kind,
                                      scales={t.name: t.scale for t in data.tasks if t.scale})
    recorders = {t.name: SampleRecorder(data.index, int(t.num_classes or 0)) for t in class_tasks}
    windows = {name: EarlyLearningWindow(rec, patience=config.patience if k == 0 else None)
               for k, (name, rec) in enumerate(recorders.items())}
    for name, window in windows.items():
        window.state_key = f"EarlyLearningWindow/{name}"
    recording = []
    for name, rec in recorders.items():
        cb = RecordSamples(rec, task=name, record_validation=True)
        cb.state_key = f"RecordSamples/{name}"
        recording.append(cb)
    regression = [t.name for t in data.tasks if t.kind == "regression"]
    target_window = EarlyTargetWindow(data, {}) if regression else None
    watchers: list[DiagnosisCallback] = []
    if config.training_checks is not None:
        watchers.append(DiagnosisCallback(dataclasses.replace(config.training_checks, write_findings=False)))
    result = fit(model, train, val_data=val, config=fit_config, run_dir=run, guard=config.guard, loss_fn=loss_fn,
                 tasks=tasks, callbacks=[*recording, *windows.values(), *watchers, *callbacks,
                                         *([target_window] if target_window else [])])
    device = next(result.model.parameters()).device
    first = windows[class_tasks[0].name] if class_tasks else None
    best_model = first.model_at_best(result.model) if first else result.model
    embeddings = embed(best_model, data.features, device) if class_tasks else None
    outputs = predict_task_outputs(result.model, data.features, device=device)
    val_outputs = predict_task_outputs(best_model, val.features, device=device)  # each task's competence
    exclude = [n for w in watchers for n in w.check_names]
    tables: dict[str, pd.DataFrame] = {}
    findings: list[Finding] = []
    skipped: list[str] = [s for w in watchers for s in w.skipped]
    epochs = pd.DataFrame(result.history)
    steps = steps_frame(run)
    for k, spec in enumerate(class_tasks):
        view = task_view(data, spec.name)
        evidence = Evidence(steps=steps, epochs=epochs, samples=recorders[spec.name].compute(), train=view,
                            val=task_view(val, spec.name), model=None, pred_probs=windows[spec.name].mean_probs(),
                            embeddings=embeddings, extra={
                                "early_learning_epoch": first.best_epoch,
                                "competence": measure_competence(val.targets[spec.name].numpy(),
                                                                 val_outputs[spec.name].argmax(1).numpy(),
                                                                 int(spec.num_classes or 0))})
        issues = conclude_samples(evidence, outputs[spec.name].argmax(1).numpy(),
                                  exclude=exclude + (list(TASK_FREE) if k else []))
        tables[spec.name] = issues.table
        findings += [for_task(f, spec.name) for f in issues.findings]
        skipped += [f"{s} [{spec.name}]" for s in issues.skipped]
    if target_window is not None:
        residuals = target_window.results()
        for name in regression:
            tables[name] = regression_table(data, name, residuals[name], outputs[name])
        if not class_tasks:
            skipped.append("outliers and near duplicates (they run with a class task's evidence; none here)")
    if not watchers:  # a DiagnosisCallback runs them itself (diagnosis.task_findings)
        findings += per_task_epoch_findings(epochs, [t.name for t in data.tasks])
    for cb in [*watchers, *callbacks]:
        findings += list(getattr(cb, "findings", []) or [])
    table = merge_task_tables(tables)
    if run is not None:
        atomic_write_text(run.sample_issues, table.to_csv(index=False))
        write_findings(run.findings, findings)
    early = first.best_epoch if first else (target_window.window_epochs - 1 if target_window else None)
    return TaskDiagnosis(table=table, tables=tables, findings=findings, fit=result,
                         seconds=time.perf_counter() - started, run_dir=run, early_learning_epoch=early,
                         skipped_checks=skipped)


def merge_task_tables(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per sample: ``index``, each task's columns suffixed ``_<task>``, then the task-free ones."""
    merged: pd.DataFrame | None = None
    free: pd.DataFrame | None = None
    for task, table in tables.items():
        own = [c for c in table.columns if c != "index" and c not in TASK_FREE_COLUMNS]
        part = table[["index", *own]].rename(columns={c: f"{c}_{task}" for c in own})
        merged = part if merged is None else merged.merge(part, on="index", how="outer")
        present = [c for c in TASK_FREE_COLUMNS if c in table.columns]
        if free is None and present:
            free = table[["index", *present]]
    assert merged is not None
    if free is not None:
        merged = merged.merge(free, on="index", how="left")
    return merged.sort_values("index", kind="stable").reset_index(drop=True)


def task_issue_counts(table: pd.DataFrame) -> dict[str, Any]:
    """``{column: flagged rows}`` of every ``is_*_issue*`` column (for summaries)."""
    return {c: int(table[c].sum()) for c in table.columns if c.startswith("is_") and "_issue" in c}
