"""Vanishing gradients: the first weight layer learns orders of magnitude slower than the last."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    before_divergence,
    first_sustained,
    fmt,
    matrix,
    trainable_weight_layers,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "vanishing_gradients"
# Thresholds on the ratio of relative gradients ||g||/||w|| of the first and last weight
# layers. Relative gradients are scale-free (a layer's SGD step is lr times it), so the
# ratio says how much slower the first layer learns. Chosen a priori as orders of
# magnitude: 1e-2 (the first layer learns 100x slower) is a warning, 1e-4 an error.
WARNING_RATIO = 1e-2
ERROR_RATIO = 1e-4


def depth_gradient_ratio(evidence: Evidence) -> tuple[np.ndarray, np.ndarray, str, str] | None:
    """Steps and first/last relative-gradient ratios, with the two layer names (None if < 2 layers)."""
    layers = evidence.layers
    names = trainable_weight_layers(layers)
    if len(names) < 2:
        return None
    grad, weight = matrix(layers, "grad_norm"), matrix(layers, "weight_norm")
    first, last = names[0], names[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_first = grad[first].to_numpy() / weight[first].to_numpy()
        rel_last = grad[last].to_numpy() / weight[last].to_numpy()
        ratio = rel_first / rel_last
    # An exactly zero gradient is a cut path (dead units, a detached or frozen layer), which
    # the checks for those name; vanishing is a gradient that is small but flows.
    ok = np.isfinite(ratio) & (rel_first > 0)
    return grad.index.to_numpy()[ok], ratio[ok], first, last


@register_check(NAME, kind="training", requires=("layers",))
def vanishing_gradients(evidence: Evidence) -> CheckResult:
    """First-layer gradients orders of magnitude smaller (relative to weights) than last-layer ones."""
    evidence = before_divergence(evidence)
    found = depth_gradient_ratio(evidence)
    result = CheckResult(NAME)
    if found is None:
        return result
    steps, ratio, first, last = found
    if ratio.size < 3:
        return result
    # The verdict reads the second half of the run (where training is now); the onset
    # is the first sustained crossing.
    recent = float(np.median(ratio[ratio.size // 2 :]))
    if recent >= WARNING_RATIO:
        return result
    severity = Severity.ERROR if recent < ERROR_RATIO else Severity.WARNING
    onset = first_sustained(steps, ratio < WARNING_RATIO) or int(steps[ratio.size // 2])
    result.findings.append(Finding(
        check=NAME, severity=severity, subject=f"layer:{first}",
        message=(f"gradients vanish with depth: layer {first} gets a relative gradient {fmt(recent)}x that of "
                 f"{last} (median over the second half of the run)"),
        evidence={"first_layer": first, "last_layer": last, "median_ratio": recent,
                  "min_ratio": float(ratio.min()), "threshold": WARNING_RATIO, "samples": int(ratio.size)},
        suggestion=("use ReLU/GELU instead of sigmoid/tanh in deep stacks, He (Kaiming) initialisation, "
                    "normalisation layers (BatchNorm/LayerNorm) or residual connections; or make the network shallower"),
        step=onset,
    ))
    return result
