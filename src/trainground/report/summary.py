"""The summary shared by the HTML report and the console: data, model, outcome, top findings.

One function picks the top findings (:func:`top_findings`), so the page and the terminal
always name the same three.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainground.diagnosis.findings import Finding, Severity, sort_findings
from trainground.report.model import RepairReport, Report, RunReport

TOP_FINDINGS = 3


def top_findings(findings: Sequence[Finding] | None, n: int = TOP_FINDINGS) -> list[Finding]:
    """The ``n`` most important findings: most severe first, at most one per check.

    One per check because a check that fires on several layers (dead units in three layers)
    would otherwise fill the summary with one problem; the others stay in the full list.
    Info findings are used only when fewer than ``n`` warnings and errors exist.

    Args:
        findings: any findings (None = no findings file).
        n: how many to return.

    Returns:
        at most ``n`` findings.
    """
    chosen: list[Finding] = []
    seen: set[str] = set()
    for finding in sort_findings(list(findings or [])):
        if finding.check in seen:
            continue
        seen.add(finding.check)
        chosen.append(finding)
        if len(chosen) == n:
            break
    return chosen


def fmt(value: Any, *, percent: bool = False) -> str:
    """A number as people read it: 4 significant digits, percentages with one decimal."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if percent:
        return f"{100 * float(value):.1f} %"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Summary:
    """Headline facts, each a list of (label, text) rows, and the top findings."""

    title: str
    data: list[tuple[str, str]]
    model: list[tuple[str, str]]
    outcome: list[tuple[str, str]]
    findings: list[Finding]
    worst: Severity | None


def _data_rows(run: RunReport) -> list[tuple[str, str]]:
    data = (run.config or {}).get("data") or {}
    rows = []
    if data.get("source"):
        rows.append(("source", str(data["source"]) + (f" (target {data['target']})" if data.get("target") else "")))
    if run.sample_issues is not None:
        rows.append(("training samples", fmt(len(run.sample_issues))))
    if run.classes is not None:
        rows.append(("classes", fmt(len(run.classes))))
    schema = run.data_schema or {}
    if schema.get("kind") == "image":
        rows.append(("input", f"images {schema.get('height')}x{schema.get('width')} {schema.get('mode', '')}".strip()))
    elif schema.get("columns"):
        rows.append(("input", f"table, {len(schema['columns'])} feature columns"))
    noise = data.get("noise") or {}
    if noise.get("kind") and noise.get("rate"):
        rows.append(("injected noise", f"{noise['kind']} {fmt(noise['rate'], percent=True)} of training labels"))
    return rows


def _model_rows(run: RunReport) -> list[tuple[str, str]]:
    spec, fit = run.model_spec or {}, (run.config or {}).get("fit") or {}
    rows = []
    if spec:
        shape = spec.get("hidden") or spec.get("channels")
        rows.append(("model", f"{spec.get('name', '?')}" + (f" {shape}" if shape else "")))
    elif (run.config or {}).get("model"):
        rows.append(("model", str((run.config or {})["model"].get("name", "?"))))
    if run.parameters is not None:
        rows.append(("parameters", fmt(run.parameters)))
    if fit:
        rows.append(("optimizer", f"{fit.get('optimizer', '?')} lr {fmt(fit.get('lr'))}, batch {fmt(fit.get('batch_size'))}"))
    return rows


def _outcome_rows(run: RunReport) -> list[tuple[str, str]]:
    rows = []
    final = run.final_epoch
    if run.epochs is not None and not run.epochs.empty:
        steps = int(run.steps["step"].max()) if run.steps is not None and not run.steps.empty else final.get("step")
        rows.append(("training", f"{len(run.epochs)} epochs, {fmt(steps)} steps"))
    for key, label in (("train_accuracy", "train accuracy"), ("val_accuracy", "validation accuracy")):
        if key in final:
            rows.append((label, fmt(final[key], percent=True)))
    if run.test and run.test.get("test_accuracy") is not None:
        rows.append(("test accuracy", fmt(run.test["test_accuracy"], percent=True)))
    if run.steps is not None and "skipped" in run.steps:
        skipped = int((run.steps["skipped"].fillna(0) > 0).sum())
        rows.append(("skipped steps", fmt(skipped)))
    if run.sample_issues is not None:
        flags = [c for c in run.sample_issues.columns if c.startswith("is_") and c.endswith("_issue")]
        if flags:
            flagged = run.sample_issues[flags].astype(bool)
            rows.append(("flagged samples", f"{fmt(int(flagged.any(axis=1).sum()))} ("
                         + ", ".join(f"{c[3:-6].replace('_', ' ')} {fmt(int(flagged[c].sum()))}" for c in flags) + ")"))
    return rows


def summarize(report: Report) -> Summary:
    """The headline of a run or a repair folder (a repair: before/after and round 0's findings)."""
    if isinstance(report, RepairReport):
        base = report.round_0 or RunReport(path=report.path)
        outcome = []
        for key, label in (("val_accuracy", "validation accuracy"), ("test_accuracy", "test accuracy")):
            if report.before.get(key) is not None or report.after.get(key) is not None:
                change = f"{fmt(report.before.get(key), percent=True)} before → {fmt(report.after.get(key), percent=True)} after"
                outcome.append((label, change))
        outcome.append(("rounds", f"{len(report.rounds)} (best: round {fmt(report.best_round)})"))
        if report.changes is not None:
            counts = report.changes["action"].value_counts() if "action" in report.changes else {}
            per_action = ", ".join(f"{k} {fmt(int(v))}" for k, v in counts.items())
            outcome.append(("changed samples", f"{fmt(len(report.changes))} ({per_action})"))
        if report.stopped:
            outcome.append(("stopped", str(report.stopped)))
        findings = top_findings(base.findings)
        return Summary(title=f"repair {report.name}", data=_data_rows(base), model=_model_rows(base),
                       outcome=outcome, findings=findings, worst=_worst(base.findings))
    return Summary(title=f"run {report.name}", data=_data_rows(report), model=_model_rows(report),
                   outcome=_outcome_rows(report), findings=top_findings(report.findings),
                   worst=_worst(report.findings))


def _worst(findings: Sequence[Finding] | None) -> Severity | None:
    return max((f.severity for f in findings or []), default=None)
