"""``trainground diagnose``: load the data, train once while recording every sample, check.

The workflow around the library's dataset diagnosis (``trainground.diagnosis.dataset``):
load a file or ``builtin:NAME``, create the run directory and its ``config.yaml``, run
:func:`~trainground.diagnosis.dataset.diagnose_dataset`, print what it found. The sample
checks (label issues, outliers, near duplicates, ambiguous), the dataset checks and the
registered training checks write ``samples.parquet``, ``sample_issues.csv`` and
``findings.json``; validation samples are diagnosed too, so every input row gets a row.
"""

from __future__ import annotations

import dataclasses
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
    MultiTargetDataset,
    load_multitarget,
    load_targets,
    stratified_split,
    target_list,
    with_target_scales,
)
from trainground.diagnosis import DiagnosisConfig, Finding, print_findings
from trainground.diagnosis.dataset import (
    PATIENCE,
    DatasetDiagnosisConfig,
    Diagnosis,
)
from trainground.diagnosis.dataset import diagnose_dataset as _diagnose_dataset
from trainground.diagnosis.sample_issues import top_sample_issues
from trainground.diagnosis.tasks import REGRESSION_NOTE, TaskDiagnosis, diagnose_tasks
from trainground.engine import Callback, DataConfig, FitConfig, RunConfig, RunDir
from trainground.engine.run_losses import run_loss
from trainground.engine.rundir import check_inputs_outside
from trainground.errors import TraingroundError
from trainground.gradients import GuardConfig, TaskGradientConfig
from trainground.losses import LossConfig
from trainground.models import ModelConfig

__all__ = ["Diagnosis", "diagnose", "diagnose_dataset", "find_sample_issues", "print_diagnosis"]

_DEFAULT_TRAINING_CHECKS = DiagnosisConfig()


def diagnose_dataset(
    data: IndexedDataset, *, fit_config: FitConfig | None = None, model: torch.nn.Module | None = None,
    model_config: ModelConfig | None = None, run_dir: RunDir | str | Path | None = None,
    extra_callbacks: Sequence[Callback] = (), patience: int | None = PATIENCE, second_pass: bool = True,
    training_checks: DiagnosisConfig | None = _DEFAULT_TRAINING_CHECKS, guard: GuardConfig | None = None,
    val_positions: np.ndarray | None = None, loss_fn: torch.nn.Module | None = None,
) -> Diagnosis:
    """:func:`trainground.diagnosis.dataset.diagnose_dataset` with its options as keywords.

    This is the call signature the repair loop's rounds use (``repair.loop.DiagnoseFn``);
    each keyword is the field of ``DatasetDiagnosisConfig`` of the same name (``fit_config``
    -> ``fit``, ``model_config`` -> ``model``), ``extra_callbacks`` -> ``callbacks``.
    """
    config = DatasetDiagnosisConfig(
        fit=fit_config or FitConfig(), model=model_config or ModelConfig(), patience=patience,
        second_pass=second_pass, training_checks=training_checks, guard=guard,
    )
    return _diagnose_dataset(data, config, model=model, run_dir=run_dir, callbacks=extra_callbacks,
                             val_positions=val_positions, loss_fn=loss_fn)


def diagnose(
    source: str | Path, *, target: str | None = None, out: str | Path | None = None, overwrite: bool = False,
    fit_config: FitConfig | None = None, model_config: ModelConfig | None = None,
    extra_callbacks: Sequence[Callback] = (), data_config: DataConfig | None = None, guard: GuardConfig | None = None,
    second_pass: bool = True,
) -> Diagnosis:
    """Load ``source`` (CSV/Parquet/image folder/builtin:NAME) and :func:`diagnose_dataset` it.

    With ``out`` the run directory is created there (``overwrite`` replaces an earlier run)
    and ``config.yaml`` records what was done. ``data_config`` gives the loading options
    (image size, max categories, ignored columns); its source and target are ``source`` and ``target``.
    ``second_pass=False`` stops after the first training (about half the training compute;
    benchmarks/README.md, "MNIST-1D at scale", has what it costs in F1).
    """
    data_config = dataclasses.replace(data_config or DataConfig(), source=str(source), target=target)
    if out is not None:
        check_inputs_outside(out, [source])
    # Loaded before the folder exists: a bad input leaves none behind.
    data = load_targets(str(source), target=target, kinds=data_config.task_kinds, image_size=data_config.image_size,
                        stream_images=data_config.stream_images, max_categories=data_config.max_categories,
                        ignore=data_config.ignore)
    if isinstance(data, MultiTargetDataset):  # several targets, or a regression target
        return diagnose_multitarget(source, data_config=data_config, out=out, overwrite=overwrite,
                                    fit_config=fit_config, model_config=model_config, guard=guard,
                                    extra_callbacks=extra_callbacks, data=data)
    fit_config = fit_config or FitConfig()
    model_config = model_config or ModelConfig()
    run = None
    if out is not None:
        run = RunDir.create(out, overwrite=overwrite, inputs=[source])
        run.write_config(RunConfig(
            data=data_config, model=model_config, fit=fit_config, guard=guard or GuardConfig(),
        ).to_dict())
    try:
        return diagnose_dataset(
            data, fit_config=fit_config, model_config=model_config, run_dir=run, extra_callbacks=extra_callbacks,
            guard=guard, second_pass=second_pass,
        )
    except TraingroundError:
        if run is not None:
            run.discard()  # refused by a check: nothing of the run stays
        raise


def diagnose_multitarget(
    source: str | Path, *, data_config: DataConfig, out: str | Path | None = None, overwrite: bool = False,
    fit_config: FitConfig | None = None, model_config: ModelConfig | None = None, guard: GuardConfig | None = None,
    loss: LossConfig | None = None, tasks: TaskGradientConfig | None = None, extra_callbacks: Sequence[Callback] = (),
    second_pass: bool = False, data: MultiTargetDataset | None = None,
) -> TaskDiagnosis:
    """:func:`~trainground.diagnosis.tasks.diagnose_tasks` on the columns of ``data_config.target``
    (one training, per-task label issues and findings); ``loss`` builds the multi-task loss
    (class weights per task, event weights, task weighting) as ``run_fit`` does; ``data``: the
    dataset already loaded (else loaded here, ``data_config.task_kinds`` saying which target is what)."""
    del second_pass  # the per-task diagnosis has no second pass (diagnosis.tasks says why)
    if data is None:
        targets = target_list(data_config.target) or [str(data_config.target)]
        data = load_multitarget(str(source), targets=targets, max_categories=data_config.max_categories,
                                ignore=data_config.ignore, kinds=data_config.task_kinds)
    fit_config = fit_config or FitConfig()
    model_config = model_config or ModelConfig()
    config = RunConfig(data=data_config, model=model_config, fit=fit_config, guard=guard or GuardConfig(),
                       loss=loss or LossConfig(), tasks=tasks or TaskGradientConfig())
    train_pos, _ = stratified_split(data.labels.numpy(), fraction=fit_config.val_fraction, seed=fit_config.seed)
    data = with_target_scales(data, train_pos)  # regression targets: standardised on the training rows
    loss_fn = run_loss(config.loss, str(source), data.subset(train_pos), target=None)
    run = None
    if out is not None:
        run = RunDir.create(out, overwrite=overwrite, inputs=[source])
        run.write_config(config.to_dict())
    try:
        return diagnose_tasks(data, DatasetDiagnosisConfig(fit=fit_config, model=model_config, guard=guard,
                                                           second_pass=False),
                              run_dir=run, callbacks=extra_callbacks, loss_fn=loss_fn, tasks=config.tasks)
    except TraingroundError:
        if run is not None:
            run.discard()
        raise


def find_sample_issues(
    data: IndexedDataset | str | Path, *, target: str | None = None, fit_config: FitConfig | None = None,
    model_config: ModelConfig | None = None, out: str | Path | None = None,
) -> pd.DataFrame:
    """The ``sample_issues.csv`` table for ``data`` (a dataset, a file or builtin:NAME), from one training.

    Columns: ``index, given_label, predicted_label, suggested_label, is_label_issue,
    label_score, is_outlier_issue, outlier_score, is_near_duplicate_issue,
    near_duplicate_score, is_ambiguous_issue, ambiguous_score`` (scores in [0, 1], low = bad).
    """
    if isinstance(data, IndexedDataset):
        return diagnose_dataset(
            data, fit_config=fit_config, model_config=model_config, run_dir=out, training_checks=None,
        ).table
    return diagnose(data, target=target, out=out, fit_config=fit_config, model_config=model_config).table


def print_diagnosis(result: Diagnosis | TaskDiagnosis, console: Console, *, limit: int = 10) -> None:
    """Findings, then the worst flagged samples, then where everything was written."""
    if isinstance(result, TaskDiagnosis):
        print_task_diagnosis(result, console, limit=limit)
        return
    print_findings(result.findings, console=console, limit=limit)
    top = top_sample_issues(result.table, limit)
    flags = [c for c in result.table.columns if c.startswith("is_") and c.endswith("_issue")]
    counts = ", ".join(f"{c[3:-6].replace('_', ' ')} {int(result.table[c].sum())}" for c in flags)
    weak = _weak_note(result.findings)
    if weak:
        console.print(weak.strip(), highlight=False, soft_wrap=True)
    if len(top):
        table = Table(title=f"top sample issues (flagged: {counts})", title_justify="left")
        for column in ("index", "given", "suggested", "issues", "label score"):
            table.add_column(column)
        for _, row in top.iterrows():
            issues = ", ".join(c[3:-6].replace("_", " ") for c in flags if row[c])
            where = f"{row['index']} {row['source']}" if "source" in row else str(row["index"])
            table.add_row(where, str(row["given_label"]), str(row["suggested_label"]), issues,
                          f"{row.get('label_score', float('nan')):.2f}")
        console.print(table)
    else:
        console.print("[green]no sample issues flagged[/green]")
    where: dict[str, Any] = {"samples": len(result.table), "seconds": round(result.seconds, 1),
                             "early-learning window": f"epochs 0-{result.early_learning_epoch}"}
    if result.run_dir is not None:
        where["run directory"] = str(result.run_dir.path)
        # Said plainly: the saved model is the one the run's figures (metrics.jsonl, the
        # report, predicted_label) describe, the last epoch's, not early stopping's pick.
        where["model.safetensors"] = f"the last epoch's weights (epoch {len(result.fit.history)})"
    console.print("  ".join(f"{k}: {v}" for k, v in where.items()), highlight=False, soft_wrap=True)


def print_task_diagnosis(result: TaskDiagnosis, console: Console, *, limit: int = 10) -> None:
    """A multi-target diagnosis: findings, then per task the flagged counts and the worst label issues."""
    print_findings(result.findings, console=console, limit=limit)
    final = result.fit.final
    for task, table in result.tables.items():
        if "suggested_label" not in table.columns:  # a regression task: the residual check only
            _print_regression_task(task, table, final, console, limit=limit)
            continue
        flags = [c for c in table.columns if c.startswith("is_") and c.endswith("_issue")]
        counts = ", ".join(f"{c[3:-6].replace('_', ' ')} {int(table[c].sum())}" for c in flags)
        accuracy = final.get(f"val_accuracy/{task}")
        shown = "" if accuracy is None else f"  val accuracy {accuracy:.1%}"
        shown += _weak_note([f for f in result.findings if f.evidence.get("task") == task])
        console.print(f"task [bold]{task}[/bold]: flagged {counts}{shown}", highlight=False, soft_wrap=True)
        top = top_sample_issues(table[[c for c in table.columns if c not in ("is_outlier_issue", "outlier_score",
                                                                            "is_near_duplicate_issue",
                                                                            "near_duplicate_score")]], limit)
        if len(top):
            grid = Table(title=f"top label issues of {task}", title_justify="left")
            for column in ("index", "given", "suggested", "label score"):
                grid.add_column(column)
            for _, row in top.iterrows():
                grid.add_row(str(row["index"]), str(row["given_label"]), str(row["suggested_label"]),
                             f"{row.get('label_score', float('nan')):.2f}")
            console.print(grid)
    if result.skipped_checks:
        console.print(f"not run: {'; '.join(result.skipped_checks)}", highlight=False, soft_wrap=True)
    where: dict[str, Any] = {"samples": len(result.table), "seconds": round(result.seconds, 1),
                             "early-learning window": f"epochs 0-{result.early_learning_epoch}"}
    if result.run_dir is not None:
        where["run directory"] = str(result.run_dir.path)
    console.print("  ".join(f"{k}: {v}" for k, v in where.items()), highlight=False, soft_wrap=True)


def _print_regression_task(task: str, table: pd.DataFrame, final: dict, console: Console, *, limit: int) -> None:
    flagged = table[table["is_label_issue"]].sort_values("label_score").head(limit)
    mae = final.get(f"val_mae/{task}")
    shown = "" if mae is None else f"  val MAE {mae:.4g}"
    console.print(f"task [bold]{task}[/bold] (regression): flagged label {int(table['is_label_issue'].sum())}{shown}",
                  highlight=False, soft_wrap=True)
    console.print(f"  {REGRESSION_NOTE}", highlight=False, soft_wrap=True)
    if len(flagged):
        grid = Table(title=f"top suspicious values of {task}", title_justify="left")
        for column in ("index", "given", "predicted", "score"):
            grid.add_column(column)
        for _, row in flagged.iterrows():
            grid.add_row(str(row["index"]), f"{row['given_label']:.4g}", f"{row['predicted_label']:.4g}",
                         f"{row['label_score']:.2f}")
        console.print(grid)


def _weak_note(findings: Sequence[Finding]) -> str:
    """A short warning when the label-issue finding says the model is too weak for its flags, else ''."""
    for f in findings:
        if f.check == "label_issues" and f.evidence.get("model_competent") is False:
            return (f"  [yellow]label flags unreliable: model skill {f.evidence['skill']:.2f} over the majority "
                    f"baseline < {f.evidence['min_skill']} (see the label_issues finding)[/yellow]")
    return ""
