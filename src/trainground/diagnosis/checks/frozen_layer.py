"""Frozen layers: a layer with parameters whose weights never changed during training."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._common import (
    SUSTAIN,
    before_divergence,
    matrix,
    onset_of_final_streak,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "frozen_layer"
# No threshold on sizes: an update norm of exactly 0 is the definition of a layer that does
# not learn. The zero updates must run to the end of the evidence over at least 3 sampled
# steps (SUSTAIN), so one skipped step is not a verdict; a layer frozen mid-run counts from
# the first zero update of that final streak.
MIN_SAMPLES = SUSTAIN


@register_check(NAME, kind="training", requires=("layers",))
def frozen_layer(evidence: Evidence) -> CheckResult:
    """Layers whose weights never change: requires_grad off, no gradient, or not in the optimizer."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    update = matrix(evidence.layers, "update_norm")
    if update.empty or len(update) < MIN_SAMPLES:
        return result
    trainable, has_grad = matrix(evidence.layers, "trainable"), matrix(evidence.layers, "has_grad")
    grad_norm = matrix(evidence.layers, "grad_norm")
    steps = update.index.to_numpy()
    still = (update.fillna(0.0) == 0).to_numpy()
    run_onset = onset_of_final_streak(steps, still.all(axis=1))
    if run_onset is not None and int((steps >= run_onset).sum()) >= MIN_SAMPLES:
        # Nothing moved at all (lr 0, every step skipped): one run-level finding, not one per layer.
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR, subject="run",
            message=f"no parameter changed since step {run_onset} ({int((steps >= run_onset).sum())} sampled steps)",
            evidence={"sampled_steps": int((steps >= run_onset).sum())},
            suggestion="check that the optimizer holds the model's parameters and that the learning rate is > 0",
            step=run_onset,
        ))
        return result
    for j, layer in enumerate(update.columns):
        onset = onset_of_final_streak(steps, still[:, j])
        frozen_for = 0 if onset is None else int((steps >= onset).sum())
        if frozen_for < MIN_SAMPLES:
            continue
        is_trainable = bool(trainable[layer].iloc[-1] > 0) if layer in trainable else True
        got_grad = bool(has_grad[layer][has_grad.index >= onset].max() > 0) if layer in has_grad else True
        if not is_trainable:
            severity, why = Severity.WARNING, "its parameters have requires_grad=False"
            suggestion = (f"if {layer} was not meant to be frozen, set requires_grad=True on its parameters "
                          "(and pass them to the optimizer)")
        elif not got_grad:
            severity, why = Severity.ERROR, "its parameters never receive a gradient (not on the loss's graph)"
            suggestion = f"check that the output of {layer} is used in the forward pass and not detached"
        elif layer in grad_norm and np.nan_to_num(grad_norm[layer][grad_norm.index >= onset].to_numpy()).max() == 0:
            severity, why = Severity.ERROR, "its gradient is exactly zero (no signal reaches it)"
            suggestion = (f"look downstream of {layer} for dead units (see dead_units) or a zero scale/mask "
                          "that cuts the gradient path")
        else:
            severity, why = Severity.ERROR, "it has gradients but the optimizer never moves it"
            suggestion = f"pass the parameters of {layer} to the optimizer (or give its group lr > 0)"
        result.findings.append(Finding(
            check=NAME, severity=severity, subject=f"layer:{layer}",
            message=f"the weights of {layer} have not changed since step {onset} ({frozen_for} sampled steps): {why}",
            evidence={"frozen_samples": frozen_for, "sampled_steps": len(steps), "requires_grad": is_trainable,
                      "has_grad": got_grad},
            suggestion=suggestion, step=onset,
        ))
    return result
