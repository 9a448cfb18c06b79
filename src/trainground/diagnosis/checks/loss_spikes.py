"""Loss spikes and non-finite losses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.checks._common import fmt, initial_loss
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "loss_spikes"
# Reference: the median of the previous WINDOW finite step losses.
WINDOW = 25
# A spike must pass three a-priori tests at once: a robust z-score above 6 (IQR scale;
# essentially impossible for mini-batch noise), at least double the recent median, and a
# jump that undoes at least half of the progress made since the start (so a late blip
# from 0.002 to 0.05 is not called a spike).
Z = 6.0
MIN_FACTOR = 2.0
PROGRESS_UNDONE = 0.5
# The noise floor. A step's loss is the mean over a batch of B samples, and per-sample
# losses are heavy-tailed: a near-perfect model has a few hard samples whose loss is 100x
# the median, so most batches hold none and the one that holds one jumps by its loss / B,
# the more the smaller the batch (issue 14: "31 loss spikes" of a near-perfect model at
# batch 16). Neither the IQR nor a z-score sees that tail (it is rare, so a hard batch sits
# 5-7 standard deviations out). What a mean over B samples reaches by sampling alone is
# read off the batches themselves: the highest batch loss of the last NOISE_WINDOW steps
# (a hard sample lands in one batch an epoch, so a window of a few epochs holds its
# batches). A spike must be MIN_FACTOR times that envelope; a spike is unrecovered only
# when the median of the next WINDOW steps stays above it.
NOISE_WINDOW = 4 * WINDOW
# Recurrent (>= 3) or unrecovered spikes (the median of the next WINDOW steps stays above
# twice the pre-spike median and above the noise envelope) hurt training: warning. Isolated,
# recovered ones: info.
RECURRENT = 3


def noise_envelope(loss: np.ndarray) -> np.ndarray:
    """Per step: the highest batch loss of the NOISE_WINDOW steps before it (at least WINDOW of them)."""
    return pd.Series(loss).rolling(NOISE_WINDOW, min_periods=WINDOW).max().shift(1).to_numpy()


def find_spikes(loss: np.ndarray, start: float) -> list[int]:
    """Positions in ``loss`` (finite values) that are spikes by the rules above (vectorised
    rolling statistics; the robust scale is the interquartile range / 1.349, the noise floor
    the envelope of the recent batch means)."""
    series = pd.Series(loss)
    rolling = series.rolling(WINDOW)
    med = rolling.median().shift(1).to_numpy()
    scale = ((rolling.quantile(0.75) - rolling.quantile(0.25)) / 1.349).shift(1).to_numpy() + 1e-12
    envelope = noise_envelope(loss)
    jump = loss - med
    with np.errstate(invalid="ignore"):
        hit = ((jump > Z * scale) & (loss > MIN_FACTOR * envelope) & (loss > MIN_FACTOR * med)
               & (jump >= PROGRESS_UNDONE * np.maximum(start - med, 0.0)))
    return [int(t) for t in np.flatnonzero(np.nan_to_num(hit, nan=0).astype(bool))]


@register_check(NAME, kind="training", requires=("steps",))
def loss_spikes(evidence: Evidence) -> CheckResult:
    """Non-finite losses (NaN/inf) and sudden loss spikes that undo training progress."""
    result = CheckResult(NAME)
    steps = evidence.steps
    if steps is None or steps.empty:
        return result
    raw = pd.to_numeric(steps["loss"], errors="coerce").to_numpy(dtype=float)
    all_steps = steps["step"].to_numpy()
    nonfinite = ~np.isfinite(raw)  # metrics.jsonl stores NaN/inf as null, read back as NaN
    if nonfinite.any():
        first = int(all_steps[int(np.argmax(nonfinite))])
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR, subject="run",
            message=f"the loss became non-finite (NaN/inf) at step {first}; {int(nonfinite.sum())} steps in all",
            evidence={"first_nonfinite_step": first, "nonfinite_steps": int(nonfinite.sum()),
                      "last_finite_loss": float(raw[:int(np.argmax(nonfinite))][-1]) if np.argmax(nonfinite) else None},
            suggestion="lower the learning rate, clip gradients or roll back on spikes (trainground Guard), "
                       "and check the inputs for NaN/inf",
            step=first,
        ))
    ok = np.isfinite(raw)
    loss, loss_steps = raw[ok], all_steps[ok]
    start = initial_loss(steps)
    spikes = find_spikes(loss, start)
    if not spikes:
        return result
    unrecovered = []
    envelope = noise_envelope(loss)
    for t in spikes:
        before = float(np.median(loss[t - WINDOW : t]))
        after = loss[t + 1 : t + 1 + WINDOW]
        if after.size == 0 or float(np.median(after)) > max(MIN_FACTOR * before, float(envelope[t])):
            unrecovered.append(t)
    severity = Severity.WARNING if unrecovered or len(spikes) >= RECURRENT else Severity.INFO
    worst = max(spikes, key=lambda t: loss[t] / max(float(np.median(loss[t - WINDOW : t])), 1e-12))
    result.findings.append(Finding(
        check=NAME, severity=severity, subject="run",
        message=(f"{len(spikes)} loss spike(s), {len(unrecovered)} not recovered within {WINDOW} steps; worst at "
                 f"step {loss_steps[worst]}: {fmt(float(loss[worst]))} against a recent median of "
                 f"{fmt(float(np.median(loss[worst - WINDOW : worst])))}"),
        evidence={"spikes": len(spikes), "unrecovered": len(unrecovered),
                  "spike_steps": [int(loss_steps[t]) for t in spikes[:20]], "initial_loss": start},
        suggestion="lower the learning rate or add warm-up; clip gradients or skip spiking batches (trainground "
                   "Guard); look at the samples of the spiking batches",
        step=int(loss_steps[spikes[0]]),
    ))
    return result
