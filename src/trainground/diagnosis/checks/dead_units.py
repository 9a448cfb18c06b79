"""Dead units: rectifier units that output 0 for every sample seen over a window of training."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    before_divergence,
    fmt,
    matrix,
    onset_of_final_streak,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "dead_units"
# A healthy rectifier unit is active on a sizeable share of inputs; one never active over
# >= 512 samples (see ActivationMonitor) gets no gradient and is lost capacity. A priori:
# half the layer lost is a warning, 90 % an error (the layer is nearly a constant).
WARNING_FRACTION = 0.5
ERROR_FRACTION = 0.9


@register_check(NAME, kind="training", requires=("layers",))
def dead_units(evidence: Evidence) -> CheckResult:
    """Rectifier layers in which most units never activate (dead ReLUs)."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    dead = matrix(evidence.layers, "dead_fraction")
    if dead.empty:
        return result
    seen = matrix(evidence.layers, "samples_seen")
    steps = dead.index.to_numpy()
    for layer in dead.columns:
        values = dead[layer].to_numpy()
        ok = np.isfinite(values)
        if not ok.any():
            continue
        last = float(values[ok][-1])
        if last < WARNING_FRACTION:
            continue
        onset = onset_of_final_streak(steps[ok], values[ok] >= WARNING_FRACTION)
        samples = int(seen[layer].dropna().iloc[-1]) if layer in seen else 0
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR if last >= ERROR_FRACTION else Severity.WARNING,
            subject=f"layer:{layer}",
            message=f"{fmt(100 * last)} % of the units of {layer} never activated over the last {samples} samples seen",
            evidence={"dead_fraction": last, "threshold": WARNING_FRACTION, "samples_seen": samples,
                      "windows": int(ok.sum())},
            suggestion="initialise biases at 0 (or slightly positive) with He/Kaiming weights, lower the learning "
                       "rate, standardise the inputs, or use LeakyReLU/GELU so units cannot die",
            step=onset,
        ))
    return result
