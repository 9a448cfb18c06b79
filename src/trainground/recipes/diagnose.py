"""``trainground diagnose``: one training with the per-sample recorder, then every check.

The workflow: load the data, hold out a stratified validation split (it marks where
memorisation starts, see ``diagnosis.early_learning``), train once while recording every
sample, then run the sample checks (label issues, outliers, near duplicates, ambiguous),
the dataset checks (class imbalance, underperforming groups) and the registered training
checks, and write ``samples.parquet``, ``sample_issues.csv`` and ``findings.json``.
Validation samples are diagnosed too: their records come from the eval pass at the end of
each epoch, so every input row gets a row in ``sample_issues.csv``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from trainground.data import IndexedDataset, load_data, stratified_split
from trainground.diagnosis import (
    DiagnosisCallback,
    DiagnosisConfig,
    Evidence,
    Finding,
    available_checks,
    print_findings,
    run_checks,
    write_findings,
)
from trainground.diagnosis.callback import DATA_CHECKS
from trainground.diagnosis.checks.label_issues import label_issue_probs
from trainground.diagnosis.confident_learning import prune_by_noise_rate
from trainground.diagnosis.early_learning import EarlyLearningWindow
from trainground.diagnosis.sample_issues import sample_issues_table, top_sample_issues
from trainground.engine import (
    Callback,
    DataConfig,
    FitConfig,
    FitResult,
    RunConfig,
    RunDir,
    fit,
)
from trainground.engine.atomic import atomic_write_text
from trainground.engine.evaluate import predict_logits
from trainground.engine.metrics import read_metrics
from trainground.engine.rng import seed_everything
from trainground.engine.rundir import check_inputs_outside
from trainground.engine.sample_recording import RecordSamples
from trainground.errors import ConfigError, DataError, TraingroundError
from trainground.gradients import GuardConfig
from trainground.models import ModelConfig, build_model
from trainground.monitors.samples import SampleRecorder

# Epochs without a better validation loss before training stops: the usual early-stopping
# patience; past it the validation loss on noisy labels only rises as the model memorises.
PATIENCE = 5
_DEFAULT_TRAINING_CHECKS = DiagnosisConfig()


@dataclass
class Diagnosis:
    """What ``diagnose`` found: the per-sample table, the findings and the run behind them."""

    table: pd.DataFrame
    findings: list[Finding]
    fit: FitResult
    seconds: float
    run_dir: RunDir | None = None
    early_learning_epoch: int | None = None
    skipped_checks: list[str] = field(default_factory=list)
    pred_probs: np.ndarray | None = field(default=None, repr=False)
    # Training samples x epochs over both passes: the compute spent, in sample presentations.
    sample_presentations: int = 0
    # The first pass's model at its best validation loss (early stopping's pick), or None.
    best_model: torch.nn.Module | None = field(default=None, repr=False)


def _validate(data: IndexedDataset, config: FitConfig) -> None:
    if len(data) < 10:
        raise DataError(f"{data.name}: {len(data)} samples; diagnosis needs at least 10")
    counts = np.bincount(data.labels.numpy(), minlength=data.num_classes)
    if (counts > 0).sum() < 2:
        raise DataError(f"{data.name}: all samples have the same label; diagnosis needs at least two classes")
    if not 0 < config.val_fraction < 1:
        raise ConfigError(
            f"val_fraction must be in (0, 1) for diagnosis, got {config.val_fraction}: the validation loss "
            "marks where the model starts memorising wrong labels"
        )
    features = data.features
    if not torch.isfinite(features).all():
        rows = torch.nonzero(~torch.isfinite(features.reshape(len(features), -1)).all(dim=1)).flatten()[:5].tolist()
        raise DataError(f"{data.name}: features hold NaN or infinite values (rows {rows})")


def diagnose_dataset(
    data: IndexedDataset, *, fit_config: FitConfig | None = None, model: torch.nn.Module | None = None,
    model_config: ModelConfig | None = None, run_dir: RunDir | str | Path | None = None,
    extra_callbacks: Sequence[Callback] = (), patience: int | None = PATIENCE, second_pass: bool = True,
    training_checks: DiagnosisConfig | None = _DEFAULT_TRAINING_CHECKS, guard: GuardConfig | None = None,
    val_positions: np.ndarray | None = None, loss_fn: torch.nn.Module | None = None,
) -> Diagnosis:
    """Train once on ``data`` while recording every sample, then run every check.

    Args:
        data: the samples to diagnose (all of them get a row in the table).
        fit_config: training options; ``val_fraction`` must be > 0.
        model: a model to train; built from ``model_config`` and the data when None.
        model_config: options of the built-in model.
        run_dir: where to write the run (``samples.parquet``, ``sample_issues.csv``,
            ``findings.json``, metrics, checkpoints, model); None keeps everything in memory.
        extra_callbacks: more watchers of the run; the ``.findings`` of any that has them
            are added to the findings.
        patience: stop training once the validation loss has not improved for this many
            epochs (memorisation has begun; the diagnosis needs only what came before);
            None trains for all ``fit_config.epochs``.
        second_pass: train a second time on the samples the first pass does not flag as
            label issues, holding the flagged ones out (see :func:`_second_pass`); the
            sample checks then read the second pass's early-learning probabilities and
            representation. The first pass is the run written to ``run_dir``.
        training_checks: options of the training diagnosis (gradient, activation and
            representation monitors, the training checks and the train/validation shift
            check) that watches the first pass; None: samples and dataset only (what
            :func:`find_sample_issues` does).
        guard: the Guard's options for both passes (``GuardConfig()`` when None).
        val_positions: positions in ``data`` of the validation split (default: a stratified
            ``fit_config.val_fraction`` split seeded with ``fit_config.seed``); the repair loop
            passes its frozen split here.
        loss_fn: the training loss of both passes (cross-entropy when None), e.g. with class
            or per-sample weights.

    Returns:
        The :class:`Diagnosis`.
    """
    started = time.perf_counter()
    config = fit_config or FitConfig()
    _validate(data, config)
    run = None if run_dir is None else (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir))
    if val_positions is None:
        train_pos, val_pos = stratified_split(data.labels.numpy(), fraction=config.val_fraction, seed=config.seed)
    else:
        val_pos = np.sort(np.asarray(val_positions, dtype=np.int64))
        train_pos = np.setdiff1d(np.arange(len(data)), val_pos)
    train, val = data.subset(train_pos), data.subset(val_pos)
    if model is None:
        seed_everything(config.seed)
        model = build_model(
            model_config or ModelConfig(), input_shape=data.input_shape, num_classes=data.num_classes,
            train_features=train.features,
        )
    initial = copy.deepcopy(model)  # the second pass starts from the same initial weights
    if run is not None:
        run.record(run.samples.name)  # the recorder writes its parts itself, not through atomic.py
    recorder = SampleRecorder(data.index, data.num_classes, path=None if run is None else run.samples)
    window = EarlyLearningWindow(recorder, patience=patience)
    watchers: list[Callback] = []
    if training_checks is not None:
        watchers.append(DiagnosisCallback(
            dataclasses.replace(training_checks, write_findings=False), train_data=train, val_data=val,
        ))
    callbacks = [RecordSamples(recorder, val_data=val), window, *watchers, *extra_callbacks]
    result = fit(model, train, val_data=val, config=config, callbacks=callbacks, run_dir=run, guard=guard,
                 loss_fn=loss_fn)
    records = recorder.compute()
    device = next(result.model.parameters()).device
    pred_probs = window.mean_probs()
    best_model = window.model_at_best(result.model)
    embeddings = _embed(best_model, data, device)
    window_epoch = window.best_epoch
    work = len(train) * len(result.history)
    if second_pass:
        trusted = ~prune_by_noise_rate(data.labels.numpy(), label_issue_probs(data.labels.numpy(), pred_probs, embeddings))
        if not trusted.all() and trusted.sum() >= 10:
            pred_probs, embeddings, extra_work = _second_pass(data, trusted, initial, config, patience, guard, loss_fn)
            work += extra_work
    predicted = predict_logits(result.model, data.features, device=device).argmax(1).numpy()
    evidence = Evidence(
        steps=_steps(run), epochs=pd.DataFrame(result.history), samples=records, train=data, val=val,
        model=result.model, pred_probs=pred_probs, embeddings=embeddings,
        extra={"early_learning_epoch": window_epoch},
    )
    # The training checks and the train/validation shift check belong to the training
    # diagnosis (it ran inside the first pass, on the monitors' evidence, with the two
    # splits); the sample and dataset checks run here.
    names = [s.name for kind in ("samples", "dataset") for s in available_checks(kind)]  # type: ignore[arg-type]
    names = [n for n in names if n not in DATA_CHECKS and not any(n in w.check_names for w in watchers)]
    # scikit-learn's BLAS/OpenMP pools would otherwise take every core: on a busy machine
    # k-means then runs 100x slower; the training's own thread count is the right share.
    with threadpool_limits(limits=torch.get_num_threads()):
        results, skipped = run_checks(evidence, names)
    skipped += [name for w in watchers for name in w.skipped]
    findings = [f for r in results for f in r.findings]
    for cb in [*watchers, *extra_callbacks]:
        findings += list(getattr(cb, "findings", []) or [])
    table = sample_issues_table(results, data, predicted)
    if run is not None:
        atomic_write_text(run.sample_issues, table.to_csv(index=False))
        write_findings(run.findings, findings)
    return Diagnosis(
        table=table, findings=findings, fit=result, seconds=time.perf_counter() - started, run_dir=run,
        early_learning_epoch=window_epoch, skipped_checks=skipped, pred_probs=pred_probs, sample_presentations=work,
        best_model=best_model,
    )


def _embed(model: torch.nn.Module, data: IndexedDataset, device: torch.device) -> np.ndarray | None:
    """Penultimate representation of every sample, when the model exposes ``embed``."""
    if not hasattr(model, "embed"):
        return None
    with torch.no_grad():
        chunks = [model.embed(chunk.to(device)).float().cpu() for chunk in data.features.split(1024)]
    return torch.cat(chunks).reshape(len(data), -1).numpy()


def _second_pass(
    data: IndexedDataset, trusted: np.ndarray, initial: torch.nn.Module, config: FitConfig, patience: int | None,
    guard: GuardConfig | None, loss_fn: torch.nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Train again, from the same initial weights, on the samples the first pass trusts.

    The model then learns from cleaner labels, and the samples flagged by the first pass
    are held out: their probabilities come from eval passes at each epoch end, so they are
    genuinely out-of-sample (the idea of iterative noisy cross-validation, here with one
    split chosen by the data instead of K folds). Costs one more early-stopped training
    on most of the data.

    References:
        Chen et al., "Understanding and Utilizing Deep Neural Networks Trained with Noisy
        Labels", ICML 2019 (INCV).
    """
    positions = np.flatnonzero(trusted)
    fit_pos, val_pos = stratified_split(data.labels.numpy()[positions], fraction=config.val_fraction, seed=config.seed)
    train, val = data.subset(positions[fit_pos]), data.subset(positions[val_pos])
    heldout = data.subset(np.sort(np.concatenate([positions[val_pos], np.flatnonzero(~trusted)])))
    recorder = SampleRecorder(data.index, data.num_classes)
    window = EarlyLearningWindow(recorder, patience=patience)
    model = copy.deepcopy(initial)
    result = fit(
        model, train, val_data=val, config=config, callbacks=[RecordSamples(recorder, val_data=heldout), window],
        guard=guard, loss_fn=loss_fn,
    )
    device = next(result.model.parameters()).device
    work = len(train) * len(result.history)
    return window.mean_probs(), _embed(window.model_at_best(result.model), data, device), work


def _steps(run: RunDir | None) -> pd.DataFrame | None:
    if run is None or not run.metrics.exists():
        return None
    rows = [r for r in read_metrics(run.metrics) if r.get("kind") == "step"]
    return pd.DataFrame(rows) if rows else None


def diagnose(
    source: str | Path, *, target: str | None = None, out: str | Path | None = None, overwrite: bool = False,
    fit_config: FitConfig | None = None, model_config: ModelConfig | None = None,
    extra_callbacks: Sequence[Callback] = (),
) -> Diagnosis:
    """Load ``source`` (CSV/Parquet/image folder/builtin:NAME) and :func:`diagnose_dataset` it.

    With ``out`` the run directory is created there (``overwrite`` replaces an earlier run)
    and ``config.yaml`` records what was done.
    """
    if out is not None:
        check_inputs_outside(out, [source])
    data = load_data(str(source), target=target)  # before the folder exists: a bad input leaves none
    fit_config = fit_config or FitConfig()
    model_config = model_config or ModelConfig()
    run = None
    if out is not None:
        run = RunDir.create(out, overwrite=overwrite, inputs=[source])
        run.write_config(RunConfig(
            data=DataConfig(source=str(source), target=target), model=model_config, fit=fit_config,
        ).to_dict())
    try:
        return diagnose_dataset(
            data, fit_config=fit_config, model_config=model_config, run_dir=run, extra_callbacks=extra_callbacks,
        )
    except TraingroundError:
        if run is not None:
            run.discard()  # refused by a check: nothing of the run stays
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


def print_diagnosis(result: Diagnosis, console: Console, *, limit: int = 10) -> None:
    """Findings, then the worst flagged samples, then where everything was written."""
    print_findings(result.findings, console=console, limit=limit)
    top = top_sample_issues(result.table, limit)
    flags = [c for c in result.table.columns if c.startswith("is_") and c.endswith("_issue")]
    counts = ", ".join(f"{c[3:-6].replace('_', ' ')} {int(result.table[c].sum())}" for c in flags)
    if len(top):
        table = Table(title=f"top sample issues (flagged: {counts})", title_justify="left")
        for column in ("index", "given", "suggested", "issues", "label score"):
            table.add_column(column)
        for _, row in top.iterrows():
            issues = ", ".join(c[3:-6].replace("_", " ") for c in flags if row[c])
            table.add_row(str(row["index"]), str(row["given_label"]), str(row["suggested_label"]), issues,
                          f"{row.get('label_score', float('nan')):.2f}")
        console.print(table)
    else:
        console.print("[green]no sample issues flagged[/green]")
    where: dict[str, Any] = {"samples": len(result.table), "seconds": round(result.seconds, 1),
                             "early-learning window": f"epochs 0-{result.early_learning_epoch}"}
    if result.run_dir is not None:
        where["run directory"] = str(result.run_dir.path)
    console.print("  ".join(f"{k}: {v}" for k, v in where.items()), highlight=False, soft_wrap=True)
