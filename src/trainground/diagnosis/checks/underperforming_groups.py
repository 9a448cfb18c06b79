"""Underperforming groups: clusters of similar samples where the model is much less accurate."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.neighbors import as_points, feature_points
from trainground.diagnosis.registry import register_check

# One-sided z of a binomial proportion: a group is reported only if its accuracy is this
# many standard errors below the overall one (p < 0.0013 per group).
Z_CUTOFF = 3.0
# Groups smaller than this say little about accuracy whatever their z.
MIN_GROUP = 10
# Significance is not materiality: with ~100 % overall accuracy a group at 97 % is
# "significant" yet nothing to act on. A group is a warning only when its accuracy is this
# many points below the overall one, otherwise an info.
MATERIAL_GAP = 0.10
# Dimensions kept for clustering.
PCA_DIMS = 16


@register_check("underperforming_groups", kind="dataset", requires=("train", "pred_probs"))
def underperforming_groups(evidence: Evidence) -> CheckResult:
    """Clusters of the learned representation (or features) whose accuracy is significantly low."""
    data = evidence.train
    labels = data.labels.numpy()
    n = len(labels)
    if n < 4 * MIN_GROUP:
        return CheckResult(check="underperforming_groups")
    if evidence.embeddings is not None:
        # float32 as the embeddings are: k-means on 16 components needs no more, and a float64
        # copy of a 200,000 x 256 representation is 410 MB
        points = as_points(evidence.embeddings, standardize=True, dtype=np.float32)
    else:
        points = feature_points(data.features, standardize=True)
    if points.shape[1] > PCA_DIMS:
        # Clusters of a few hundred samples are found as well in the leading components,
        # at a fraction of the cost of k-means++ in hundreds of dimensions.
        points = PCA(n_components=PCA_DIMS, random_state=0).fit_transform(points)
    # About sqrt(n/2) clusters (a common rule of thumb), at least 2 and at most 50.
    n_groups = int(np.clip(round(np.sqrt(n / 2)), 2, 50))
    groups = KMeans(n_clusters=n_groups, n_init=1, random_state=0).fit_predict(points)
    correct = np.asarray(evidence.pred_probs).argmax(axis=1) == labels
    overall = correct.mean()
    findings = []
    for g in range(n_groups):
        members = groups == g
        size = int(members.sum())
        if size < MIN_GROUP or overall in (0.0, 1.0):
            continue
        acc = correct[members].mean()
        z = (acc - overall) / np.sqrt(overall * (1 - overall) / size)
        if z < -Z_CUTOFF:
            top = np.bincount(labels[members], minlength=data.num_classes).argsort()[::-1][:3]
            findings.append(Finding(
                check="underperforming_groups",
                severity=Severity.WARNING if overall - acc >= MATERIAL_GAP else Severity.INFO, subject=f"group:{g}",
                message=f"a group of {size} similar samples (mostly classes "
                f"{', '.join(repr(c) for c in data.encoder.decode(top))}) has accuracy {acc:.0%} "
                f"against {overall:.0%} overall",
                evidence={"size": size, "accuracy": float(acc), "overall_accuracy": float(overall), "z": float(z),
                          "indices": data.index.numpy()[members][:20].tolist()},
                suggestion="look at these samples together: a sub-population the model misses, or a group "
                "labelled by other rules; collect more of them or check their labels",
            ))
    return CheckResult(check="underperforming_groups", findings=findings)
