"""Representation collapse: the features the classifier head sees span too few directions,
or every sample maps to (nearly) the same point."""

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

NAME = "representation_collapse"
# A linear head separates C classes with C - 1 directions (the class means of a trained
# network tend to a (C-1)-simplex: "neural collapse", Papyan et al. 2020). A representation
# whose effective rank is below half of that cannot keep the classes apart. A priori.
RANK_SHARE = 0.5
# Between-sample variance below 0.1 % of the features' second moment: every sample is the
# same point up to noise (3 % in norm). A priori.
MIN_SPREAD = 1e-3


@register_check(NAME, kind="training", requires=("layers",))
def representation_collapse(evidence: Evidence) -> CheckResult:
    """The penultimate representation's effective rank is below (C-1)/2, or all samples coincide.

    References:
        Roy & Vetterli, "The effective rank", EUSIPCO 2007; Papyan, Han & Donoho,
        "Prevalence of neural collapse during the terminal phase of deep learning training", PNAS 2020.
    """
    evidence = before_divergence(evidence)
    result = CheckResult(NAME)
    rank = matrix(evidence.layers, "effective_rank")
    if rank.empty:
        return result
    layer = rank.columns[0]
    steps = rank.index.to_numpy()
    erank = rank[layer].to_numpy()
    classes = float(matrix(evidence.layers, "num_classes")[layer].iloc[-1])
    width = float(matrix(evidence.layers, "width")[layer].iloc[-1])
    spread = matrix(evidence.layers, "spread")[layer].to_numpy()
    if classes < 2:
        return result
    needed = RANK_SHARE * (classes - 1)
    collapsed_points = np.nan_to_num(spread, nan=0.0) < MIN_SPREAD
    low_rank = np.nan_to_num(erank, nan=0.0) < needed
    pred = matrix(evidence.layers, "pred_max_fraction")
    pred_max = float(pred.iloc[-1, 0]) if not pred.empty else None
    evidence_numbers = {"effective_rank": float(erank[-1]), "classes": int(classes), "width": int(width),
                        "rank_threshold": needed, "spread": float(spread[-1]), "spread_threshold": MIN_SPREAD,
                        "train_prediction_max_fraction": pred_max}
    if collapsed_points[-1]:
        result.findings.append(Finding(
            check=NAME, severity=Severity.ERROR, subject=f"layer:{layer}",
            message=(f"representation collapsed to a point: samples differ by {fmt(float(spread[-1]))} of the "
                     f"features' second moment at the input of {layer}"),
            evidence=evidence_numbers,
            suggestion="reduce weight decay, lower the learning rate, check for dead units upstream; the head "
                       "cannot tell samples apart",
            step=onset_of_final_streak(steps, collapsed_points),
        ))
    elif low_rank[-1]:
        bottleneck = width < classes - 1
        why = (f"the layer is only {int(width)} wide (a bottleneck)" if bottleneck
               else f"only {fmt(float(erank[-1]))} effective directions are used of {int(width)}")
        result.findings.append(Finding(
            check=NAME, severity=Severity.WARNING, subject=f"layer:{layer}",
            message=(f"the representation feeding {layer} has effective rank {fmt(float(erank[-1]))}, below "
                     f"(C-1)/2 = {fmt(needed)} for {int(classes)} classes: {why}"),
            evidence=evidence_numbers,
            suggestion=("widen the layer before the head to at least C-1 units" if bottleneck else
                        "reduce weight decay or the learning rate, check for dead units, widen the penultimate layer"),
            step=onset_of_final_streak(steps, low_rank),
        ))
    return result
