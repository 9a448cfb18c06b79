"""Diagnose a finished (or interrupted) run from its directory alone: the evidence is rebuilt
from ``metrics.jsonl``, ``layers.parquet`` and, when the run was made from a config, its data
splits and final model; then the training checks run again."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from trainground.diagnosis.callback import DATA_CHECKS
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import Finding, sort_findings, write_findings
from trainground.diagnosis.layers_file import read_layers
from trainground.diagnosis.registry import available_checks, run_checks
from trainground.engine.metrics import read_metrics
from trainground.engine.rundir import RunDir
from trainground.errors import RunDirError


def run_evidence(run_dir: str | Path | RunDir, *, with_data: bool = True) -> Evidence:
    """Evidence of the run in ``run_dir``.

    Args:
        run_dir: a run directory written by ``fit`` / ``run_fit``.
        with_data: also rebuild the train/val/test splits from ``config.yaml`` (the same
            split ``run_fit`` took) and load ``model.safetensors``, for the checks that
            compare splits; silently skipped when the run has no config or model file.

    Returns:
        ``Evidence`` with ``steps``, ``epochs`` and ``layers`` (each None when absent).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    if not run.metrics.is_file():
        raise RunDirError(f"{run.metrics}: missing; this run directory has no metrics to diagnose")
    records = read_metrics(run.metrics)
    steps = pd.DataFrame([r for r in records if r.get("kind") == "step"])
    epochs = pd.DataFrame([r for r in records if r.get("kind") == "epoch"])
    steps, epochs = (f.drop(columns=["kind"]) if not f.empty else f for f in (steps, epochs))
    if not steps.empty:
        # metrics.jsonl writes a non-finite loss as null; NaN is what the checks expect.
        steps["loss"] = pd.to_numeric(steps["loss"], errors="coerce").astype(float)
    layers = read_layers(run.layers) if run.layers.exists() else None
    evidence = Evidence(
        steps=steps if not steps.empty else None, epochs=epochs if not epochs.empty else None, layers=layers,
    )
    if with_data and run.config.is_file():
        _attach_data(run, evidence)
    return evidence


def _attach_data(run: RunDir, evidence: Evidence) -> None:
    from trainground.data import stratified_split
    from trainground.engine.run import prepare_data
    from trainground.engine.run_config import RunConfig

    config = RunConfig.from_dict(run.read_config(), where=f"{run.config}:")
    prepared = prepare_data(config.data)
    train = prepared.train
    if config.fit.val_fraction > 0:
        train_pos, val_pos = stratified_split(
            train.labels.numpy(), fraction=config.fit.val_fraction, seed=config.fit.seed
        )
        evidence.train, evidence.val = train.subset(train_pos), train.subset(val_pos)
    else:
        evidence.train = train
    evidence.test = prepared.test
    if run.model.is_file():
        from trainground.engine.predict import load_trained_model

        try:
            evidence.model = load_trained_model(run).model
        except RunDirError:
            evidence.model = None  # weights saved without a spec: the checks run without a model


def diagnose_run(
    run_dir: str | Path | RunDir, *, checks: Iterable[str] | None = None, with_data: bool = True,
    write: bool = False,
) -> list[Finding]:
    """Re-run the training checks (and distribution shift) on a run directory.

    Args:
        run_dir: the run.
        checks: registered names; None = every training check plus distribution_shift.
        with_data: rebuild the data splits and model for the checks that need them.
        write: replace the run's ``findings.json`` with the result.

    Returns:
        the findings, most severe first.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    evidence = run_evidence(run, with_data=with_data)
    names = list(checks) if checks is not None else [s.name for s in available_checks("training")] + list(DATA_CHECKS)
    results, _ = run_checks(evidence, names)
    findings = sort_findings([f for r in results for f in r.findings])
    if write:
        write_findings(run.findings, findings)
    return findings

