"""Load imbalance: a mixture-of-experts layer whose busiest expert stays above its capacity."""

from __future__ import annotations

import math

import numpy as np

from trainground.diagnosis.checks._common import SUSTAIN, fmt, onset_of_final_streak
from trainground.diagnosis.checks._routing import SUGGESTION, router_windows
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "load_imbalance"
# The busiest expert's load over an even split (E * max_i f_i). Above the layer's capacity
# factor that expert drops tokens (they skip the layer); without a capacity, 2x an even
# share (an expert doing the work of two) is the bar. It must hold for SUSTAIN windows in
# a row to the end: a young router is unbalanced for a while, and that is not a finding.
NO_CAPACITY_RATIO = 2.0
# An error when the layer dropped >= 10 % of its assignments over that streak: a tenth of
# the tokens bypassed the experts.
ERROR_DROPPED = 0.1


@register_check(NAME, kind="training", requires=("layers",))
def load_imbalance(evidence: Evidence) -> CheckResult:
    """Mixture-of-experts layers whose busiest expert stays overloaded window after window."""
    result = CheckResult(NAME)
    for router in router_windows(evidence.layers):
        ok = router.enough()
        if ok.sum() < SUSTAIN:
            continue
        steps, load, stats = router.steps[ok], router.load[ok], router.stats[ok]
        cf = float(stats["router_capacity_factor"].iloc[-1])
        limit = NO_CAPACITY_RATIO if math.isnan(cf) else cf
        ratio = router.experts * load.max(axis=1)
        over = ratio > limit
        onset = onset_of_final_streak(steps, over)
        streak = int(np.sum(steps >= onset)) if onset is not None else 0
        if streak < SUSTAIN:
            continue
        dropped = float(stats["router_dropped_fraction"].to_numpy()[-streak:].mean())
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR if dropped >= ERROR_DROPPED else Severity.WARNING,
            subject=f"layer:{router.name}",
            message=(f"the busiest expert of {router.name} took {fmt(ratio[-1])}x an even share of the tokens "
                     f"(limit {fmt(limit)}x) for the last {streak} windows; {fmt(100 * dropped)} % of the "
                     f"assignments were dropped"),
            evidence={"max_load_ratio": float(ratio[-1]), "limit": limit, "windows": streak,
                      "dropped_fraction": dropped, "ratio_history": [float(r) for r in ratio[-streak:]]},
            suggestion=SUGGESTION + "; or raise the capacity_factor so fewer tokens are dropped",
            step=onset,
        ))
    return result
