"""The top findings shared by the page and the console."""

from __future__ import annotations

from trainground.diagnosis.findings import Finding, Severity
from trainground.report.summary import fmt, top_findings


def _f(check: str, severity: Severity, step: int | None = None, subject: str = "run") -> Finding:
    return Finding(check=check, severity=severity, subject=subject, message=f"{check} {subject}", step=step)


def test_most_severe_first_one_per_check_infos_last() -> None:
    findings = [
        _f("plateau", Severity.INFO), _f("dead_units", Severity.WARNING, 50, "layer:a"),
        _f("dead_units", Severity.WARNING, 10, "layer:b"), _f("loss_spikes", Severity.ERROR, 99),
        _f("overfitting", Severity.WARNING, 200),
    ]
    top = top_findings(findings)
    assert [(f.check, f.subject) for f in top] == [("loss_spikes", "run"), ("dead_units", "layer:b"), ("overfitting", "run")]
    assert [f.check for f in top_findings(findings, n=5)] == ["loss_spikes", "dead_units", "overfitting", "plateau"]


def test_no_findings() -> None:
    assert top_findings(None) == [] and top_findings([]) == []


def test_fmt() -> None:
    assert fmt(0.96111) == "0.9611" and fmt(1437) == "1,437" and fmt(0.5, percent=True) == "50.0 %"
    assert fmt(None) == "-" and fmt(float("nan")) == "-" and fmt(3.0) == "3" and fmt("adam") == "adam"
