"""Dead experts: experts of a mixture-of-experts layer that no token reaches."""

from __future__ import annotations

import numpy as np

from trainground.diagnosis.checks._routing import SUGGESTION, router_windows
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.registry import register_check

NAME = "dead_experts"
# An expert chosen for no assignment over a window that holds >= 20 per expert (see
# _routing.MIN_ASSIGNMENTS_PER_EXPERT) gets no gradient: its parameters are dead weight.
# Any is worth a warning; half the experts or more is an error (the layer lost most of
# the capacity it was built for).
ERROR_FRACTION = 0.5


@register_check(NAME, kind="training", requires=("layers",))
def dead_experts(evidence: Evidence) -> CheckResult:
    """Mixture-of-experts layers with experts that received no token in the last window."""
    result = CheckResult(NAME)
    for router in router_windows(evidence.layers):
        if not router.enough()[-1]:
            continue
        dead = np.flatnonzero(router.load[-1] == 0).tolist()
        if not dead:
            continue
        fraction = len(dead) / router.experts
        # since when: the first window of the final run of windows in which these experts were all idle
        idle = (router.load[:, dead] == 0).all(axis=1) & router.enough()
        start = len(idle) - 1
        while start > 0 and idle[start - 1]:
            start -= 1
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR if fraction >= ERROR_FRACTION else Severity.WARNING,
            subject=f"layer:{router.name}",
            message=(f"{len(dead)} of the {router.experts} experts of {router.name} received no token over the "
                     f"last {int(len(idle) - start)} window(s) (experts {', '.join(map(str, dead))})"),
            evidence={"dead": dead, "dead_fraction": fraction, "experts": router.experts,
                      "tokens_last_window": float(router.stats["router_tokens"].iloc[-1])},
            suggestion=SUGGESTION, step=int(router.steps[start]),
        ))
    return result
