"""Diagnose a two-player (GAN) run from its folder: epoch metrics, each player's steps -> the GAN checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainground.diagnosis.checks._gan import DISCRIMINATOR, GENERATOR, PLAYERS_KEY
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import Finding, sort_findings, write_findings
from trainground.diagnosis.registry import run_checks
from trainground.engine.metrics import read_metrics
from trainground.errors import RunDirError

GAN_CHECKS = ("gan_mode_collapse", "gan_discriminator_overpowering", "gan_oscillation")


def gan_evidence(run_path: str | Path, players: tuple[str, ...] = (DISCRIMINATOR, GENERATOR)) -> Evidence:
    """``epochs`` from ``metrics.jsonl``; each player's step records in ``extra["gan_players"]``."""
    run = Path(run_path)
    if not (run / "metrics.jsonl").is_file():
        raise RunDirError(f"{run / 'metrics.jsonl'}: missing; this run directory has no metrics to diagnose")
    epochs = pd.DataFrame([r for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "epoch"])
    steps = {}
    for name in players:
        path = run / f"metrics-{name}.jsonl"
        if path.is_file():
            frame = pd.DataFrame([r for r in read_metrics(path) if r.get("kind") == "step"])
            if not frame.empty:
                frame["loss"] = pd.to_numeric(frame["loss"], errors="coerce").astype(float)
                steps[name] = frame
    return Evidence(epochs=epochs if not epochs.empty else None, extra={PLAYERS_KEY: steps})


def diagnose_gan(run_path: str | Path, *, write: bool = True) -> list[Finding]:
    """Run the GAN checks on the run in ``run_path``; with ``write``, its ``findings.json``."""
    results, _ = run_checks(gan_evidence(run_path), GAN_CHECKS)
    findings = sort_findings([f for r in results for f in r.findings])
    if write:
        write_findings(Path(run_path) / "findings.json", findings)
    return findings
