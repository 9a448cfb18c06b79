"""Helpers the training policies share: which findings count, the round's lr and Guard options."""

from __future__ import annotations

import math
from typing import Any

from trainground.diagnosis import Finding, Severity
from trainground.repair.policy import RepairContext

# Policies act on findings of severity warning or above: an info finding is "worth knowing,
# nothing to do" by definition (diagnosis.findings.Severity), and a healthy run has none above.
ACT_AT = Severity.WARNING
# The healthy update-to-weight ratio per step (Karpathy, CS231n): the reference scale of the
# lr_too_high and lr_too_low checks, and the scale the lr policies steer the ratio back to.
HEALTHY_UPDATE_RATIO = 1e-3


def acting(context: RepairContext, check: str) -> list[Finding]:
    """Findings of ``check`` at severity warning or above."""
    return [f for f in context.findings_of(check) if f.severity >= ACT_AT]


def current_lr(context: RepairContext, findings: list[Finding]) -> float | None:
    """The round's learning rate: its ``RunConfig.fit.lr``, else the lr a finding read from the metrics."""
    fit = getattr(context.config, "fit", None)
    if fit is not None and getattr(fit, "lr", None):
        return float(fit.lr)
    for f in findings:
        lr = f.evidence.get("lr")
        if isinstance(lr, (int, float)) and lr > 0:
            return float(lr)
    return None


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (evidence read back from JSON may be a string)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def planned(context: RepairContext, action: str, target: Any) -> bool:
    """Whether the plan that trained this round already holds ``action`` on ``target``
    (the loop puts its ``TrainingPlan`` in ``context.extra["plan"]``)."""
    plan = context.extra.get("plan")
    edits = getattr(plan, "model_edits", ())
    return any(a.action == action and a.target == target for a in edits)
