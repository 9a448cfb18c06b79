"""Guard stall: the Guard holds the step far below the optimizer's own while the loss is flat."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.checks._common import (
    before_divergence,
    block_means,
    fmt,
    initial_loss,
    onset_of_final_streak,
)
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "guard_stall"
# A priori: the Guard's share of the optimizer's step (trust-region update scale times the clip
# ratio threshold / gradient norm) below one tenth is a cut of more than a decade, the most the
# trust region may spend on a flat loss before it lets the step recover (gradients/secant_gate.py).
HELD = 0.1
# Over the last third of the run (as the plateau check): the share's median below HELD and the
# loss fell by less than 1 % of its level. A falling loss means the held step still works.
TAIL = 1 / 3
MIN_IMPROVEMENT = 0.01
# A loss above where it started is divergence, the business of other checks.
DIVERGED = 1.05
# A flat loss below half of where it started is a fitted model (the "far from trained" line
# of plateau and lr_too_low): on a small table most batches then have next to no gradient,
# so a percentile clip follows them down, but it holds back no learning that was under way.
HIGH_LOSS = 0.5


def _column(steps: pd.DataFrame, name: str) -> np.ndarray:
    if name not in steps:
        return np.full(len(steps), np.nan)
    return pd.to_numeric(steps[name], errors="coerce").to_numpy(dtype=float)


def step_share(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per step: (trust-region update scale, clip ratio min(1, threshold / norm)); NaN where not logged."""
    scale = _column(steps, "update_scale")
    norm, threshold = _column(steps, "grad_norm"), _column(steps, "clip_threshold")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((norm > 0) & np.isfinite(threshold), np.minimum(1.0, threshold / norm), np.nan)
    ratio = np.where(np.isfinite(norm) & ~np.isfinite(threshold), 1.0, ratio)  # no clip in the chain
    return scale, ratio


@register_check(NAME, kind="training", requires=("steps",))
def guard_stall(evidence: Evidence) -> CheckResult:
    """The Guard's update scale or clip ratio stays below 0.1 over the last third while the loss is flat
    and still above half of its start."""
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    steps = evidence.steps
    if steps is None or steps.empty or "loss" not in steps:
        return result
    scale, ratio = step_share(steps)
    share = np.where(np.isfinite(scale), scale, 1.0) * np.where(np.isfinite(ratio), ratio, 1.0)
    known = np.isfinite(scale) | np.isfinite(ratio)
    tail = np.arange(len(steps)) >= int(np.floor(len(steps) * (1 - TAIL)))
    if known[tail].sum() < 10:
        return result  # no Guard statistics logged (a loop without the Guard, or an old run)
    held = float(np.median(share[tail & known]))
    ends, means = block_means(steps)
    start = initial_loss(steps)
    if held >= HELD or means.size < 6 or not np.isfinite(start):
        return result
    last = means[int(np.floor(means.size * (1 - TAIL))):]
    head_level, level = float(last[:2].mean()), float(last[-2:].mean())
    improvement = (head_level - level) / max(abs(head_level), 1e-12)
    if improvement >= MIN_IMPROVEMENT or level > DIVERGED * start or level <= HIGH_LOSS * start:
        return result
    med_scale = float(np.nanmedian(scale[tail])) if np.isfinite(scale[tail]).any() else 1.0
    med_ratio = float(np.nanmedian(ratio[tail])) if np.isfinite(ratio[tail]).any() else 1.0
    by = "trust region" if med_scale <= med_ratio else "gradient clip"
    step_numbers = steps["step"].to_numpy() if "step" in steps else np.arange(len(steps))
    onset = onset_of_final_streak(step_numbers[known], share[known] < HELD)
    result.findings.append(Finding(
        check=NAME, severity=Severity.WARNING, subject="guard",
        message=(f"the Guard's {by} holds the step at {fmt(held)} of the optimizer's own (median over the last "
                 f"third of the run) while the loss is flat at {fmt(level)} (it fell {fmt(100 * improvement)} %)"),
        evidence={"median_step_share": held, "median_update_scale": med_scale, "median_clip_ratio": med_ratio,
                  "held_by": "trust_region" if by == "trust region" else "clip", "threshold": HELD,
                  "loss": level, "initial_loss": start, "tail_improvement": improvement,
                  "improvement_threshold": MIN_IMPROVEMENT},
        suggestion=("loosen the Guard: raise or drop a fixed max_norm, raise the clip percentile, or switch the "
                    "trust region off (GuardConfig(trust_region=False)) for this run; the repair's loosen_clip "
                    "policy does this"),
        step=onset,
    ))
    return result
