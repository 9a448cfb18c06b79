"""Overfitting: the validation loss rises from its minimum while the train/validation gap grows."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainground.diagnosis.checks._common import before_divergence, fmt
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check
from trainground.engine.evaluate import predict_logits

NAME = "overfitting"
# A priori: the validation loss at least doubled from its best epoch and the gap between
# validation and training loss at least doubled too: warning. A rise of 25 % with a
# growing gap is worth knowing (info): early stopping would have helped a little.
WARNING_RISE = 2.0
INFO_RISE = 1.25
GAP_GROWTH = 2.0
# The noise floor: a validation loss is a mean over n samples, known only to within its
# standard error s / sqrt(n) (s: the spread of the per-sample losses). On a small split
# (issue 14: 15 samples, loss 0.047 at its best) one sample can double the mean. The rise
# must exceed Z_RISE standard errors of the final validation loss (one-sided 5 %), read in
# relative terms (s / (mean sqrt(n)), from the per-sample cross-entropy of the model on the
# validation split), so it is on the scale of whatever loss the run logged. Without the
# model or the validation data in the evidence, the rule above stands alone.
Z_RISE = 1.645


def relative_standard_error(evidence: Evidence) -> float | None:
    """``s / (mean sqrt(n))`` of the model's per-sample cross-entropy on the validation split, or None."""
    model, val = evidence.model, evidence.val
    if model is None or val is None or not hasattr(val, "features") or len(val) < 2:
        return None
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return None
    logits = predict_logits(model, val.features, device=device)
    losses = F.cross_entropy(logits.float(), torch.as_tensor(val.labels), reduction="none").double().numpy()
    mean = float(losses.mean())
    if not np.isfinite(mean) or mean <= 0:
        return None
    return float(losses.std(ddof=1) / (mean * np.sqrt(len(losses))))


@register_check(NAME, kind="training", requires=("epochs",))
def overfitting(evidence: Evidence) -> CheckResult:
    """Validation loss >= 2x its minimum with the train/validation gap >= 2x what it was then."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    epochs = evidence.epochs
    if epochs is None or "val_loss" not in epochs or "train_loss" not in epochs or len(epochs) < 3:
        return result
    val = epochs["val_loss"].astype(float).to_numpy()
    train = epochs["train_loss"].astype(float).to_numpy()
    if not np.isfinite(val).all() or not np.isfinite(train).all():
        return result
    best = int(np.argmin(val))
    rise = val[-1] / max(val[best], 1e-12)
    gap_best, gap_end = val[best] - train[best], val[-1] - train[-1]
    gap_growth = gap_end / max(gap_best, 1e-12) if gap_best > 0 else (np.inf if gap_end > 0 else 0.0)
    if best == len(val) - 1 or rise < INFO_RISE or gap_growth < GAP_GROWTH:
        return result
    noise = relative_standard_error(evidence)
    # (final - best) > Z standard errors of the final mean, i.e. (rise - 1) best > Z noise final.
    if noise is not None and rise - 1.0 <= Z_RISE * noise * rise:
        return result
    severity = Severity.WARNING if rise >= WARNING_RISE else Severity.INFO
    # Onset: the first epoch after the best whose validation loss passed the threshold for good.
    threshold = (WARNING_RISE if severity is Severity.WARNING else INFO_RISE) * val[best]
    above = val >= threshold
    i = len(val) - 1
    while i > best + 1 and above[i - 1]:
        i -= 1
    best_step = int(epochs["step"].iloc[best]) if "step" in epochs else None
    numbers = {"best_epoch": best, "best_val_loss": float(val[best]), "final_val_loss": float(val[-1]),
               "val_loss_rise": float(rise), "gap_at_best": float(gap_best), "gap_at_end": float(gap_end),
               "rise_threshold": WARNING_RISE, "val_samples": None if evidence.val is None else len(evidence.val),
               "relative_standard_error": noise}
    if "val_accuracy" in epochs:
        acc = epochs["val_accuracy"].astype(float).to_numpy()
        numbers.update(best_val_accuracy=float(acc[best]), final_val_accuracy=float(acc[-1]))
    result.findings.append(Finding(
        check=NAME, severity=severity, subject="run",
        message=(f"overfitting: validation loss rose {fmt(rise)}x from its minimum {fmt(float(val[best]))} at "
                 f"epoch {best} while the train/validation gap grew from {fmt(float(gap_best))} to {fmt(float(gap_end))}"),
        evidence=numbers,
        suggestion=(f"stop early (around step {best_step}), add weight decay or dropout, augment the data, "
                    "or get more training data"),
        step=int(epochs["step"].iloc[i]) if "step" in epochs else None,
    ))
    return result
