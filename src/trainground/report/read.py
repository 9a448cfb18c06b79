"""Read a run directory or a repair folder into a :class:`RunReport` / :class:`RepairReport`.

Each file is read on its own: a missing or unreadable file becomes a note and an omitted
section, never an exception, so a crashed or half-written run still gets a report. Only a
path that is no run at all is an error (:class:`RunDirError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import yaml

from trainground.diagnosis.findings import read_findings, sort_findings
from trainground.diagnosis.layers_file import read_layers
from trainground.engine.rundir import RunDir
from trainground.errors import RunDirError
from trainground.report.model import RepairReport, Report, RunReport

T = TypeVar("T")


def read_report(path: str | Path) -> Report:
    """A repair folder (``metrics.json`` with ``rounds``) or a run directory.

    Raises:
        RunDirError: ``path`` does not exist, is not a folder, or holds neither.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise RunDirError(f"{folder}: no such run directory")
    if is_repair_folder(folder):
        return read_repair(folder)
    if not RunDir(folder).is_run() and not _has_run_files(folder):
        raise RunDirError(
            f"{folder}: not a trainground run directory (no config.yaml, metrics.jsonl, findings.json, "
            "sample_issues.csv or checkpoints/) nor a repair folder (metrics.json with rounds)"
        )
    return read_run(folder)


def is_repair_folder(folder: Path) -> bool:
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return False
    try:
        return "rounds" in json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _has_run_files(folder: Path) -> bool:
    return any((folder / n).exists() for n in ("findings.json", "sample_issues.csv", "layers.parquet"))


def _attempt(notes: list[str], what: str, path: Path, load: Callable[[Path], T]) -> T | None:
    """``load(path)``, or None with a note when the file is missing or cannot be read."""
    if not path.exists():
        notes.append(f"{path.name} is missing: {what} omitted.")
        return None
    try:
        return load(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file only costs its section
        notes.append(f"{path.name} could not be read ({type(err).__name__}: {err}): {what} omitted.")
        return None


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a JSON-lines file and the number of lines that were not valid JSON
    (a torn last line of a killed run is the usual one)."""
    records, bad = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                bad += 1
    return records, bad


def _metrics(path: Path, notes: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict | None]:
    records, bad = read_jsonl(path)
    if bad:
        notes.append(f"metrics.jsonl: {bad} unreadable line(s) skipped.")
    frames = {}
    for kind in ("step", "epoch"):
        rows = [r for r in records if r.get("kind") == kind]
        frame = pd.DataFrame(rows).drop(columns=["kind"], errors="ignore") if rows else None
        if frame is not None:
            # null in JSON is a non-finite value in the run; NaN is what numeric code expects
            for column in frame.columns:
                if column != "kind":
                    frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frames[kind] = frame
    tests = [r for r in records if r.get("kind") == "test"]
    return frames["step"], frames["epoch"], (tests[-1] if tests else None)


# State-dict entries that are buffers, not trained parameters (input standardisation, BatchNorm statistics).
_BUFFERS = ("normalize.", "running_mean", "running_var", "num_batches_tracked")


def _weights_header(path: Path) -> tuple[dict[str, Any], int]:
    # Only the header is read: metadata and tensor shapes, never the weights themselves.
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
        count = 0
        for key in fh.keys():  # noqa: SIM118 - a safetensors handle, not a dict
            if any(b in key for b in _BUFFERS):
                continue
            size = 1
            for dim in fh.get_slice(key).get_shape():
                size *= int(dim)
            count += size
    return {k: json.loads(v) for k, v in meta.items() if k in ("model", "data_schema", "classes")}, count


def _yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def read_run(path: str | Path) -> RunReport:
    """Everything the report shows about one run directory (no check is re-run)."""
    run = RunDir(path)
    report = RunReport(path=run.path)
    notes = report.notes
    report.config = _attempt(notes, "the configuration", run.config, _yaml)
    metrics = _attempt(notes, "training curves and gradient trajectories", run.metrics, lambda p: _metrics(p, notes))
    if metrics is not None:
        report.steps, report.epochs, report.test = metrics
    elif (run.path / "lr_find.json").exists():
        notes.pop()  # an lr-find folder has no training to miss
    if run.model.exists():
        header = _attempt(notes, "the model description", run.model, _weights_header)
        if header is not None:
            meta, report.parameters = header
            report.model_spec, report.data_schema = meta.get("model"), meta.get("data_schema")
            report.classes = meta.get("classes")
    report.layers = _attempt(notes, "per-layer heatmaps", run.layers, read_layers)
    findings = _attempt(notes, "findings", run.findings, read_findings)
    report.findings = sort_findings(findings) if findings is not None else None
    if run.sample_issues.exists():
        report.sample_issues = _attempt(notes, "the sample-issue table", run.sample_issues, pd.read_csv)
    else:
        notes.append("sample_issues.csv is missing (a fit without sample diagnosis): sample sections omitted.")
    if run.actions.exists():
        actions = _attempt(notes, "Guard actions", run.actions, read_jsonl)
        report.actions = actions[0] if actions is not None else None
    # Written by other commands into the run folder (lr-find, explain); read as files, so the
    # report depends on their format, never on their code.
    for name, what in (("lr_find", "the learning-rate range test"), ("explanations", "the explanations")):
        if (run.path / f"{name}.json").exists():
            setattr(report, name, _attempt(notes, what, run.path / f"{name}.json",
                                           lambda p: json.loads(p.read_text(encoding="utf-8"))))
    return report


def read_repair(path: str | Path) -> RepairReport:
    """A repair folder: rounds, before/after, changes, actions, round 0 and the best round."""
    folder = Path(path)
    report = RepairReport(path=folder)
    notes = report.notes
    report.config = _attempt(notes, "the configuration", folder / "config.yaml", _yaml)
    metrics = _attempt(notes, "the repair rounds", folder / "metrics.json",
                       lambda p: json.loads(p.read_text(encoding="utf-8")))
    if metrics is not None:
        report.rounds = list(metrics.get("rounds") or [])
        report.best_round = metrics.get("best_round")
        report.before = dict(metrics.get("before") or {})
        report.after = dict(metrics.get("after") or {})
        report.stopped = metrics.get("stopped")
        report.reference = metrics.get("reference")
    report.changes = _attempt(notes, "the table of changed samples", folder / "changes.csv", pd.read_csv)
    actions = _attempt(notes, "the repair actions", folder / "actions.jsonl", read_jsonl)
    report.actions = actions[0] if actions is not None else None
    report.round_0 = _round(folder, 0, report)
    if report.best_round not in (None, 0):
        report.best = _round(folder, int(report.best_round), report)
    return report


def _round(folder: Path, k: int, report: RepairReport) -> RunReport | None:
    record = next((r for r in report.rounds if r.get("round") == k), {})
    sub = folder / str(record.get("run_dir") or f"round_{k}")
    if not sub.is_dir():
        report.notes.append(f"{sub.name}/ is missing: the sections of round {k} are omitted.")
        return None
    return read_run(sub)
