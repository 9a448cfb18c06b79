"""Exploding gradients: non-finite gradients, or gradients larger than the weights they update."""

from __future__ import annotations

import warnings

import numpy as np

from trainground.diagnosis.checks._common import (
    first_sustained,
    fmt,
    initial_loss,
    matrix,
    trainable_weight_layers,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "exploding_gradients"
# A relative gradient ||g|| / ||w|| above 1 means one unit-lr step would move a layer
# further than the size of its weights: the gradient, not the weights, sets the scale.
# The median over weight layers must exceed it, so one small head layer at initialisation
# cannot trip it alone. Chosen a priori (the natural scale of a ratio), 100 = error.
WARNING_RELATIVE = 1.0
ERROR_RELATIVE = 100.0
# Growth over time: global gradient norm 1000x (three orders of magnitude) its value in
# the first sampled steps while the loss is above where it started.
GROWTH = 1e3


@register_check(NAME, kind="training", requires=("layers",))
def exploding_gradients(evidence: Evidence) -> CheckResult:
    """Non-finite gradients, gradients larger than the weights, or gradient norms growing 1000x."""
    result = CheckResult(NAME)
    layers = evidence.layers
    grad, weight = matrix(layers, "grad_norm"), matrix(layers, "weight_norm")
    if grad.empty:
        return result
    steps = grad.index.to_numpy()
    bad = ~np.isfinite(grad.to_numpy()).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        which = [c for c in grad.columns if not np.isfinite(grad[c].iloc[i])]
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR, subject=f"layer:{which[0]}",
            message=f"non-finite gradients (NaN/inf) at step {steps[i]} in {len(which)} layer(s): {', '.join(which[:5])}",
            evidence={"step": int(steps[i]), "layers": which[:10], "nonfinite_samples": int(bad.sum())},
            suggestion="lower the learning rate, clip gradients (trainground Guard), check the inputs for NaN/inf "
                       "and the loss for log(0)",
            step=int(steps[i]),
        ))
        return result
    names = trainable_weight_layers(layers)
    if not names:
        return result
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = grad[names].to_numpy() / weight[names].to_numpy()
    with warnings.catch_warnings():  # all-NaN rows give NaN, set to 0 below
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(np.where(np.isfinite(relative), relative, np.nan), axis=1)
    typical = np.nan_to_num(typical, nan=0.0)
    recent = float(np.median(typical[typical.size // 2 :]))
    onset = first_sustained(steps, typical > WARNING_RELATIVE)
    if recent > WARNING_RELATIVE and onset is not None:
        worst = names[int(np.nanargmax(np.nanmedian(relative, axis=0)))]
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR if recent > ERROR_RELATIVE else Severity.WARNING,
            subject=f"layer:{worst}",
            message=f"gradients are larger than the weights: median relative gradient ||g||/||w|| = {fmt(recent)}",
            evidence={"median_relative_gradient": recent, "threshold": WARNING_RELATIVE, "worst_layer": worst,
                      "max_relative_gradient": float(np.nanmax(relative))},
            suggestion="check the initialisation (use Kaiming/Xavier scales), lower the learning rate, "
                       "clip gradients (trainground Guard) or add normalisation layers",
            step=onset,
        ))
        return result
    total = np.sqrt(np.square(grad.to_numpy()).sum(axis=1))
    base = float(np.median(total[:5]))
    start = initial_loss(evidence.steps)
    if base > 0 and evidence.steps is not None and np.isfinite(start):
        loss = evidence.steps.set_index("step")["loss"].astype(float)
        loss_at = loss.reindex(steps, method="nearest").to_numpy()
        grown = (total > GROWTH * base) & (loss_at > start)
        onset = first_sustained(steps, grown)
        if onset is not None:
            result.findings.append(Finding(
                check=NAME, severity=Severity.WARNING, subject="run",
                message=f"gradient norm grew to {fmt(float(total.max()))}, {fmt(float(total.max() / base))}x its "
                        "initial value, while the loss rose above its starting level",
                evidence={"initial_grad_norm": base, "max_grad_norm": float(total.max()), "growth_threshold": GROWTH},
                suggestion="lower the learning rate or clip gradients (trainground Guard)",
                step=onset,
            ))
    return result
