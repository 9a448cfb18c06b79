"""What a check concludes: ``Finding`` (about the run, a layer, a feature or the dataset)
and ``CheckResult`` (findings plus, for checks about samples, one score per sample)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from functools import total_ordering
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainground.engine.atomic import atomic_write_text
from trainground.errors import RunDirError
from trainground.jsonsafe import json_safe


@total_ordering
class Severity(Enum):
    """How much a finding matters; ordered, so ``max(severities)`` is the worst."""

    INFO = "info"          # worth knowing, nothing to do
    WARNING = "warning"    # probably hurts the result; act on the suggestion
    ERROR = "error"        # the run or the data is broken

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class Finding:
    """One conclusion of one check.

    Attributes:
        check: registered name of the check that produced it.
        severity: how much it matters.
        subject: what it is about: ``"run"``, ``"layer:body.0"``, ``"feature:petal_width"``,
            ``"class:3"``, ``"dataset"``.
        message: one sentence a user reads first.
        evidence: the numbers behind it (JSON-serialisable scalars, short lists).
        suggestion: what to do about it, concretely.
        step: optimizer step at which it was first seen, when it is about a moment of the run.
    """

    check: str
    severity: Severity
    subject: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion: str = ""
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check, "severity": self.severity.value, "subject": self.subject,
            "message": self.message, "evidence": json_safe(self.evidence, nonfinite="text"), "suggestion": self.suggestion,
            "step": self.step,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Finding:
        return cls(
            check=record["check"], severity=Severity(record["severity"]), subject=record["subject"],
            message=record["message"], evidence=dict(record.get("evidence", {})),
            suggestion=record.get("suggestion", ""), step=record.get("step"),
        )


SAMPLE_COLUMNS = ("index", "score", "flag")


@dataclass
class CheckResult:
    """What every check returns, so the report and the repair policies read any check alike.

    Attributes:
        check: registered name of the check.
        findings: conclusions about the run, layers, features or the dataset.
        samples: for checks about samples, one row per sample with at least ``index``
            (row in the input), ``score`` in [0, 1] (low = likely defective) and ``flag``
            (bool); extra columns (e.g. ``suggested_label``) are allowed.
    """

    check: str
    findings: list[Finding] = field(default_factory=list)
    samples: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if self.samples is not None:
            missing = [c for c in SAMPLE_COLUMNS if c not in self.samples.columns]
            if missing:
                raise ValueError(f"check {self.check!r}: samples table lacks columns {missing}")
            scores = self.samples["score"].to_numpy(dtype=float)
            if np.any((scores < 0) | (scores > 1)):
                raise ValueError(f"check {self.check!r}: sample scores must lie in [0, 1]")

    @property
    def worst(self) -> Severity | None:
        """Highest severity among the findings, None when there are none."""
        return max((f.severity for f in self.findings), default=None)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, earliest step first, then by check name."""
    return sorted(findings, key=lambda f: (-f.severity.rank, f.step if f.step is not None else 1 << 62, f.check))


def write_findings(path: str | Path, findings: list[Finding]) -> None:
    """Write ``findings.json`` atomically (most severe first)."""
    payload = {"findings": [f.to_json() for f in sort_findings(findings)]}
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def read_findings(path: str | Path) -> list[Finding]:
    """Read what :func:`write_findings` wrote."""
    try:
        with open(path, encoding="utf-8") as fh:
            payload = json.load(fh)
        return [Finding.from_json(r) for r in payload.get("findings", [])]
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise RunDirError(f"{path}: damaged ({type(err).__name__}); rewrite it with "
                          "`trainground findings RUN --recompute`") from None

