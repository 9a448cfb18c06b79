"""Exact and near duplicates among the inputs, and duplicates whose labels disagree."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.neighbor_cache import NeighborCache, exact_nearest
from trainground.diagnosis.neighbors import (
    ROBUST_Z_CUTOFF,
    feature_points,
    neighbor_search_method,
    robust_z,
    z_to_score,
)
from trainground.diagnosis.registry import register_check


def near_duplicate_scores(
    points: np.ndarray, candidates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score in [0, 1] (0 = exact duplicate), flag and nearest other sample (position).

    A sample is a near duplicate when its distance to its nearest neighbour is
    abnormally *small* for this data: the log nearest-neighbour distance has a robust
    z-score below -3.5 (the outlier rule mirrored), or the distance is exactly 0.
    ``candidates`` (``[N, k]`` positions of each point's nearest others, from a float32
    search) are re-ranked by their float64 distance, so exact duplicates come out at 0.
    """
    d1, nearest = exact_nearest(points, candidates)
    exact = d1 <= 1e-9 * max(float(np.abs(points).max(initial=0.0)), 1.0)
    log_d = np.log(np.where(exact, np.nan, d1))
    z = -robust_z(log_d)  # large = unusually close
    z = np.where(exact, np.inf, np.nan_to_num(z, nan=0.0))
    return np.where(exact, 0.0, z_to_score(z)), exact | (z > ROBUST_Z_CUTOFF), nearest


@register_check("near_duplicates", kind="samples", requires=("train",))
def near_duplicates(evidence: Evidence) -> CheckResult:
    """Exact and near duplicates in the standardised inputs; pairs with different labels are
    reported as conflicts (at least one of the two labels is wrong)."""
    data = evidence.train
    index, labels = data.index.numpy(), data.labels.numpy()
    if len(index) < 2:
        return CheckResult(check="near_duplicates", samples=pd.DataFrame({"index": index, "score": 1.0, "flag": False}))
    # the outlier check's search (standardised features, k = 10), run once for both
    cache: NeighborCache = evidence.neighbors
    points, _, candidates = cache.search("standardized features", data.features,
                                         lambda: feature_points(data.features, standardize=True), 10)
    score, flag, nearest = near_duplicate_scores(points, candidates)
    conflict = flag & (labels != labels[nearest])
    table = pd.DataFrame({
        "index": index, "score": score, "flag": flag, "near_duplicate_of": np.where(flag, index[nearest], -1),
        "exact_duplicate": score == 0.0, "conflicting_label": conflict,
    })
    findings = []
    if flag.any():
        findings.append(Finding(
            check="near_duplicates", severity=Severity.INFO, subject="dataset",
            message=f"{int(flag.sum())} samples have an exact or near duplicate "
            f"({int((score == 0).sum())} exact)",
            evidence={"flagged": int(flag.sum()), "exact": int((score == 0).sum()),
                      "neighbor_search": neighbor_search_method(len(points)),
                      "neighbor_index": cache.described("standardized features")},
            suggestion="drop duplicates before splitting, or validation scores will be optimistic",
        ))
    if conflict.any():
        findings.append(Finding(
            check="near_duplicates", severity=Severity.WARNING, subject="dataset",
            message=f"{int(conflict.sum())} duplicated samples carry a different label than their duplicate",
            evidence={"conflicts": int(conflict.sum()), "indices": index[conflict][:20].tolist()},
            suggestion="one label of each such pair is wrong: fix it (rows with conflicting_label in the checks' output)",
        ))
    return CheckResult(check="near_duplicates", findings=findings, samples=table)
