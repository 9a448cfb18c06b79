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
# The noise floor. A step's loss is the mean over a batch of B samples, so even a healthy
# run's step losses spread by the standard error of such a mean, sigma / sqrt(B), where
# sigma is the spread of the per-sample losses. Per-sample losses are heavy-tailed (a
# near-perfect model has a few hard samples with a loss 100x the median), so the batch
# means are too: most batches hold no hard sample, one in a few holds one and its mean
# jumps by loss / B, the more the smaller the batch. The IQR above ignores exactly those
# batches; the standard deviation of the recent batch means (the plain, tail-including
# estimate of sigma / sqrt(B) for batches drawn at random) does not. A spike must also be
# Z of these standard errors above the median: a jump that the sampling of B samples
# explains (issue 14: "31 loss spikes" of a near-perfect model at batch 16) is not one.
# Recurrent (>= 3) or unrecovered spikes (the median of the next WINDOW steps stays above
# twice the pre-spike median) hurt training: warning. Isolated, recovered ones: info.
RECURRENT = 3


def find_spikes(loss: np.ndarray, start: float) -> list[int]:
    """Positions in ``loss`` (finite values) that are spikes by the rules above (vectorised
    rolling statistics; the robust scale is the interquartile range / 1.349, the noise floor
    the standard deviation of the recent batch means)."""
    series = pd.Series(loss)
    rolling = series.rolling(WINDOW)
    med = rolling.median().shift(1).to_numpy()
    scale = ((rolling.quantile(0.75) - rolling.quantile(0.25)) / 1.349).shift(1).to_numpy() + 1e-12
    standard_error = rolling.std().shift(1).to_numpy() + 1e-12
    jump = loss - med
    with np.errstate(invalid="ignore"):
        hit = ((jump > Z * scale) & (jump > Z * standard_error) & (loss > MIN_FACTOR * med)
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
    for t in spikes:
        before = float(np.median(loss[t - WINDOW : t]))
        after = loss[t + 1 : t + 1 + WINDOW]
        if after.size == 0 or float(np.median(after)) > MIN_FACTOR * before:
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
