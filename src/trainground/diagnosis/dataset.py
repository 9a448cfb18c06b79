"""The dataset diagnosis: one recorded training -> per-sample issues and findings.

Two entry points share one conclusion step (:func:`conclude_samples`):

- :func:`diagnose_dataset` trains trainground's ``fit`` once on an ``IndexedDataset`` while
  recording every sample (what ``trainground diagnose`` does), optionally trains a
  second pass (``diagnosis.second_pass``), then concludes;
- a user's own loop, the Lightning callback and the transformers callback record the
  same evidence in their own training (``trainground.integrations``) and call
  :func:`conclude_samples` themselves.

The early-learning window (``diagnosis.early_learning``) supplies the probabilities,
``diagnosis.label_probs`` blends them with the neighbours' labels, and the registered
sample and dataset checks turn the evidence into ``sample_issues.csv`` and findings.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from trainground.data import IndexedDataset, fit_on_rows, stratified_split
from trainground.diagnosis.callback import (
    DATA_CHECKS,
    DiagnosisCallback,
    DiagnosisConfig,
)
from trainground.diagnosis.competence import measure_competence
from trainground.diagnosis.early_learning import EarlyLearningWindow
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import Finding, write_findings
from trainground.diagnosis.label_probs import embed, trusted_samples
from trainground.diagnosis.linear_view import applies as linear_view_applies
from trainground.diagnosis.linear_view import combine, linear_probs
from trainground.diagnosis.neighbor_cache import NeighborCache
from trainground.diagnosis.registry import available_checks, run_checks
from trainground.diagnosis.sample_issues import sample_issues_table, with_unlabelled
from trainground.diagnosis.second_pass import second_pass
from trainground.engine import Callback, FitConfig, FitResult, RunDir, fit
from trainground.engine.atomic import atomic_write_text
from trainground.engine.evaluate import predict_logits
from trainground.engine.metrics import read_metrics
from trainground.engine.rng import seed_everything
from trainground.engine.sample_recording import RecordSamples
from trainground.errors import ConfigError, DataError
from trainground.gradients import GuardConfig
from trainground.models import ModelConfig, build_model
from trainground.monitors.samples import SampleRecorder

# Epochs without a better validation loss before training stops: the usual early-stopping
# patience; past it the validation loss on noisy labels only rises as the model memorises.
PATIENCE = 5


@dataclass
class DatasetDiagnosisConfig:
    """How :func:`diagnose_dataset` trains and what it concludes."""

    # Training options of every pass; ``val_fraction`` must be > 0 (the validation loss
    # marks where the model starts memorising wrong labels).
    fit: FitConfig = field(default_factory=FitConfig)
    # The built-in model, when no model is passed.
    model: ModelConfig = field(default_factory=ModelConfig)
    # Stop once the validation loss has not improved for this many epochs (memorisation
    # has begun; the diagnosis uses only what came before). None trains every epoch.
    patience: int | None = PATIENCE
    # Train again on the samples the first pass trusts, holding the flagged ones out
    # (``diagnosis.second_pass``): better label issues for one more early-stopped training.
    second_pass: bool = True
    # The training diagnosis (monitors, training checks, train/validation shift) watching
    # the first pass; None: samples and dataset checks only.
    training_checks: DiagnosisConfig | None = field(default_factory=DiagnosisConfig)
    # The Guard's options for both passes (``GuardConfig()`` when None).
    guard: GuardConfig | None = None
    # Average a K-fold logistic regression's out-of-sample probabilities into the
    # early-learning ones (``diagnosis.linear_view``): None = on for small image folders
    # (``linear_view.applies``), True/False = always/never (True needs in-memory
    # numeric features and at least 5 samples per class).
    linear_view: bool | None = None


@dataclass
class Diagnosis:
    """What ``diagnose_dataset`` found: the per-sample table, the findings and the run behind them."""

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


@dataclass
class SampleIssues:
    """What :func:`conclude_samples` concludes: ``sample_issues.csv``'s table, the findings,
    and the checks skipped for missing evidence."""

    table: pd.DataFrame
    findings: list[Finding]
    skipped: list[str]


def validate_for_diagnosis(data: IndexedDataset, fit_config: FitConfig) -> None:
    """Refuse data the diagnosis cannot work on, with a message naming the problem."""
    if len(data) < 10:
        raise DataError(f"{data.name}: {len(data)} samples; diagnosis needs at least 10")
    counts = np.bincount(data.labels.numpy(), minlength=data.num_classes)
    if (counts > 0).sum() < 2:
        raise DataError(f"{data.name}: all samples have the same label; diagnosis needs at least two classes")
    if not 0 < fit_config.val_fraction < 1:
        raise ConfigError(
            f"val_fraction must be in (0, 1) for diagnosis, got {fit_config.val_fraction}: the validation loss "
            "marks where the model starts memorising wrong labels"
        )
    features = data.features
    # a streamed image folder (``ImageFiles``) is decoded per batch and scans each batch itself
    if isinstance(features, torch.Tensor) and not torch.isfinite(features).all():
        rows = torch.nonzero(~torch.isfinite(features.reshape(len(features), -1)).all(dim=1)).flatten()[:5].tolist()
        raise DataError(f"{data.name}: features hold NaN or infinite values (rows {rows})")


def conclude_samples(
    evidence: Evidence, predicted: np.ndarray | None, *, exclude: Sequence[str] = (),
) -> SampleIssues:
    """Run every registered sample and dataset check on ``evidence`` (``train`` is the data
    diagnosed, ``pred_probs``/``embeddings`` in its row order) and build the table.

    Args:
        evidence: what one recorded run offers.
        predicted: ``[N]`` class ids the trained model predicts for ``evidence.train``.
        exclude: check names not to run (e.g. those a ``DiagnosisCallback`` already ran).
    """
    names = [s.name for kind in ("samples", "dataset") for s in available_checks(kind)]  # type: ignore[arg-type]
    names = [n for n in names if n not in DATA_CHECKS and n not in exclude]
    # scikit-learn's BLAS/OpenMP pools would otherwise take every core: on a busy machine
    # k-means then runs 100x slower; the training's own thread count is the right share.
    with threadpool_limits(limits=torch.get_num_threads()):
        results, skipped = run_checks(evidence, names)
    findings = [f for r in results for f in r.findings]
    return SampleIssues(table=sample_issues_table(results, evidence.train, predicted), findings=findings,
                        skipped=skipped)


def diagnose_dataset(
    data: IndexedDataset, config: DatasetDiagnosisConfig | None = None, *, model: torch.nn.Module | None = None,
    run_dir: RunDir | str | Path | None = None, callbacks: Sequence[Callback] = (),
    val_positions: np.ndarray | None = None, loss_fn: torch.nn.Module | None = None,
) -> Diagnosis:
    """Train once on ``data`` while recording every sample, then run every check.

    Args:
        data: the samples to diagnose (all of them get a row in the table).
        config: training and diagnosis options (``DatasetDiagnosisConfig()`` when None).
        model: a model to train; built from ``config.model`` and the data when None.
        run_dir: where to write the run (``samples.parquet``, ``sample_issues.csv``,
            ``findings.json``, metrics, checkpoints, model); None keeps everything in memory.
        callbacks: more watchers of the first pass; the ``.findings`` of any that has them
            are added to the findings.
        val_positions: positions in ``data`` of the validation split (default: a stratified
            ``fit.val_fraction`` split seeded with ``fit.seed``); the repair loop passes its
            frozen split here.
        loss_fn: the training loss of both passes (cross-entropy when None).
    """
    started = time.perf_counter()
    config = config or DatasetDiagnosisConfig()
    fit_config = config.fit
    validate_for_diagnosis(data, fit_config)
    run = None if run_dir is None else (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir))
    if val_positions is None:
        train_pos, val_pos = stratified_split(data.labels.numpy(), fraction=fit_config.val_fraction, seed=fit_config.seed)
    else:
        val_pos = np.sort(np.asarray(val_positions, dtype=np.int64))
        train_pos = np.setdiff1d(np.arange(len(data)), val_pos)
    data = fit_on_rows(data, train_pos)  # imputation medians from the training split only
    train, val = data.subset(train_pos), data.subset(val_pos)
    if model is None:
        seed_everything(fit_config.seed)
        model = build_model(config.model, input_shape=data.input_shape, num_classes=data.num_classes,
                            train_features=train.features, kind=data.kind)
    initial = copy.deepcopy(model)  # the second pass starts from the same initial weights
    if run is not None:
        run.record(run.samples.name)  # the recorder writes its parts itself, not through atomic.py
    recorder = SampleRecorder(data.index, data.num_classes, path=None if run is None else run.samples)
    window = EarlyLearningWindow(recorder, patience=config.patience)
    watchers: list[DiagnosisCallback] = []
    if config.training_checks is not None:
        watchers.append(DiagnosisCallback(
            dataclasses.replace(config.training_checks, write_findings=False), train_data=train, val_data=val,
        ))
    result = fit(model, train, val_data=val, config=fit_config, run_dir=run, guard=config.guard, loss_fn=loss_fn,
                 callbacks=[RecordSamples(recorder, record_validation=True), window, *watchers, *callbacks])
    records = recorder.compute()
    device = next(result.model.parameters()).device
    use_linear = linear_view_applies(data) if config.linear_view is None else config.linear_view
    linear = linear_probs(data, seed=fit_config.seed) if use_linear else None
    pred_probs = combine(window.mean_probs(), linear)
    best_model = window.model_at_best(result.model)
    embeddings = embed(best_model, data.features, device)
    work = len(train) * len(result.history)
    # one neighbour search per space for the whole diagnosis: the trust decision below and the
    # label check share the representation's (when no second pass replaces it), the outlier
    # and near-duplicate checks the features'
    searches = NeighborCache()
    if config.second_pass:
        trusted = trusted_samples(data.labels.numpy(), pred_probs, embeddings, cache=searches)
        if not trusted.all() and trusted.sum() >= 10:
            # the second pass's representation replaces the first's: let the first go before
            # it trains (205 MB at 200,000 x 256), not only when the label check searches anew
            searches.forget("embeddings", metric="cosine")
            embeddings = None
            extra = second_pass(data, trusted, initial, fit_config=fit_config, patience=config.patience,
                                guard=config.guard, loss_fn=loss_fn)
            pred_probs, embeddings, work = combine(extra.pred_probs, linear), extra.embeddings, work + extra.sample_presentations
    predicted = predict_logits(result.model, data.features, device=device).argmax(1).numpy()
    # Early stopping's pick on the validation rows, as the repair's relabel gate measures it:
    # the label-issue finding says whether the model is competent enough for its flags to mean much.
    competence = measure_competence(val.labels.numpy(),
                                    predict_logits(best_model, val.features, device=device).argmax(1).numpy(),
                                    data.num_classes)
    evidence = Evidence(
        steps=steps_frame(run), epochs=pd.DataFrame(result.history), samples=records, train=data, val=val,
        model=result.model, pred_probs=pred_probs, embeddings=embeddings,
        extra={"early_learning_epoch": window.best_epoch, "competence": competence}, neighbors=searches,
    )
    # The training checks and the train/validation shift check belong to the training
    # diagnosis (it ran inside the first pass, on the monitors' evidence, with the two
    # splits); the sample and dataset checks run here.
    issues = conclude_samples(evidence, predicted, exclude=[n for w in watchers for n in w.check_names])
    skipped = issues.skipped + [name for w in watchers for name in w.skipped]
    table = issues.table
    if data.unlabelled is not None and len(data.unlabelled):  # rows without a label get a prediction
        table = with_unlabelled(table, data, predict_logits(result.model, data.unlabelled, device=device).argmax(1).numpy())
    findings = list(issues.findings)
    for cb in [*watchers, *callbacks]:
        findings += list(getattr(cb, "findings", []) or [])
    if run is not None:
        atomic_write_text(run.sample_issues, table.to_csv(index=False))
        write_findings(run.findings, findings)
    return Diagnosis(
        table=table, findings=findings, fit=result, seconds=time.perf_counter() - started, run_dir=run,
        early_learning_epoch=window.best_epoch, skipped_checks=skipped, pred_probs=pred_probs,
        sample_presentations=work, best_model=best_model,
    )


def steps_frame(run: RunDir | None) -> pd.DataFrame | None:
    """The per-step records of ``metrics.jsonl`` as a table, or None without any."""
    if run is None or not run.metrics.exists():
        return None
    rows = [r for r in read_metrics(run.metrics) if r.get("kind") == "step"]
    return pd.DataFrame(rows) if rows else None
