"""Outliers: samples far from all others in the learned representation (or the features)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.neighbor_cache import NeighborCache
from trainground.diagnosis.neighbors import (
    ROBUST_Z_CUTOFF,
    as_points,
    feature_points,
    neighbor_search_method,
    robust_z,
    z_to_score,
)
from trainground.diagnosis.registry import register_check

# Neighbours averaged for the distance; enough that a pair of outliers does not hide
# each other, few enough that a small class is not "far" from its own members.
NEIGHBORS = 10


def outlier_scores(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Score in [0, 1] (low = outlying) and flag, from the mean distance to the ``k`` nearest
    neighbours (``dist``: ``[N, k]``, as :func:`~trainground.diagnosis.neighbors.nearest_neighbors`
    returns them): its log is turned into a robust z-score and flagged beyond the usual
    3.5 cut-off, so the threshold adapts to the data's own spread of distances.

    References:
        Ramaswamy, Rastogi & Shim, "Efficient Algorithms for Mining Outliers from Large
        Data Sets", SIGMOD 2000 (k-NN distance); Iglewicz & Hoaglin 1993 (modified z).
    """
    mean_dist = dist.mean(axis=1)
    z = robust_z(np.log(mean_dist + 1e-12))
    return z_to_score(z), z > ROBUST_Z_CUTOFF


@register_check("outliers", kind="samples", requires=("train",))
def outliers(evidence: Evidence) -> CheckResult:
    """Samples far from their neighbours (k-NN distance): in the standardised features for
    tables, in the learned representation for images (raw pixels are a poor metric space)."""
    data = evidence.train
    # Tables: features are meaningful coordinates, and a network's representation folds
    # unfamiliar inputs onto familiar ones (measured: uniform-noise rows added to digits are
    # all found in feature space, a sixth of them in the representation).
    if len(data) < 3:
        return CheckResult(check="outliers", samples=pd.DataFrame({"index": data.index.numpy(), "score": 1.0, "flag": False}))
    cache: NeighborCache = evidence.neighbors
    if getattr(data, "kind", "table") == "image" and evidence.embeddings is not None:
        embeddings, space, searched = evidence.embeddings, "learned representation", "standardized embeddings"
        points, dist, _ = cache.search("standardized embeddings", embeddings,
                                       lambda: as_points(embeddings, standardize=True), NEIGHBORS)
    else:
        # the same search as the near-duplicate check's (standardised features, k = 10)
        points, dist, _ = cache.search("standardized features", data.features,
                                       lambda: feature_points(data.features, standardize=True), NEIGHBORS)
        space, searched = "feature space", "standardized features"
    score, flag = outlier_scores(dist)
    table = pd.DataFrame({"index": data.index.numpy(), "score": score, "flag": flag})
    findings = []
    if flag.any():
        worst = table.sort_values("score").head(10)["index"].tolist()
        findings.append(Finding(
            check="outliers", severity=Severity.INFO, subject="dataset",
            message=f"{int(flag.sum())} samples lie far from all others in the {space}",
            evidence={"flagged": int(flag.sum()), "worst_indices": worst, "neighbor_search": neighbor_search_method(len(points)),
                      "neighbor_index": cache.described(searched)},
            suggestion="inspect the flagged rows (is_outlier_issue): entry errors, wrong units or out-of-scope "
            "samples are worth fixing or removing",
        ))
    return CheckResult(check="outliers", findings=findings, samples=table)
