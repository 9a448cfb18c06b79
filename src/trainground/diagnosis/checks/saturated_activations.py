"""Saturated activations: sigmoid/tanh outputs stuck at their bounds, where the derivative is ~0."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    before_divergence,
    first_sustained,
    fmt,
    matrix,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "saturated_activations"
# Share of outputs within 1 % of a bound (derivative < 2-4 % of its peak, see
# monitors.activations). A priori: most outputs saturated (> 50 %) is a warning; 90 % an error.
WARNING_FRACTION = 0.5
ERROR_FRACTION = 0.9


@register_check(NAME, kind="training", requires=("layers",))
def saturated_activations(evidence: Evidence) -> CheckResult:
    """Bounded activations (sigmoid, tanh) whose outputs sit at their bounds most of the time."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    sat = matrix(evidence.layers, "saturation")
    if sat.empty:
        return result
    for layer in sat.columns:
        values = sat[layer].to_numpy()
        ok = np.isfinite(values)
        if ok.sum() < 3:
            continue
        steps, values = sat.index.to_numpy()[ok], values[ok]
        recent = float(np.median(values[values.size // 2 :]))
        if recent < WARNING_FRACTION:
            continue
        onset = first_sustained(steps, values >= WARNING_FRACTION) or int(steps[values.size // 2])
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR if recent >= ERROR_FRACTION else Severity.WARNING,
            subject=f"layer:{layer}",
            message=f"{fmt(100 * recent)} % of the outputs of {layer} sit at the bounds of the activation",
            evidence={"saturated_fraction": recent, "threshold": WARNING_FRACTION, "samples": int(values.size)},
            suggestion="scale the initial weights down (Xavier/Glorot for sigmoid/tanh), standardise the inputs, "
                       "add normalisation before the activation, or switch to ReLU/GELU",
            step=onset,
        ))
    return result
