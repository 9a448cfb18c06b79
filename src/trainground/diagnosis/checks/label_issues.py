"""Label issues: samples whose given label is probably wrong, found from one training run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.confident_learning import CHUNK_ROWS, prune_by_noise_rate
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.diagnosis.neighbors import (
    as_points,
    nearest_neighbors,
    neighbor_label_probs,
    neighbor_search_method,
)
from trainground.diagnosis.registry import register_check
from trainground.diagnosis.sample_curves import learning_curve_summary

# Neighbours consulted in the learned space: the usual k of k-NN label cleaning; the
# smoothed vote leaves every class some probability, so small classes are not silenced.
NEIGHBORS = 10


def label_issue_probs(
    labels: np.ndarray, early_probs: np.ndarray, embeddings: np.ndarray | None, *, k: int = NEIGHBORS,
) -> np.ndarray:
    """Class probabilities of each sample from the two views one run offers.

    The early-learning average (what the model predicted before it memorised) and the
    labels of the sample's neighbours in the learned representation (cosine distance)
    are independent views of the true class; their equal-weight average is the estimate,
    so neither view's blind spot (a hard sample for the model, a mixed neighbourhood)
    decides alone. Without embeddings the early-learning average is used alone.

    References:
        Bahri, Jiang & Gupta, "Deep k-NN for Noisy Labels", ICML 2020.
    """
    if embeddings is None or len(labels) < 3:
        return early_probs
    points = as_points(embeddings, standardize=False)
    _, neighbors = nearest_neighbors(points, k, metric="cosine")
    # By blocks of rows: the vote of a block is chunk x K, so the only N x K array made here
    # is the result (in the dtype of early_probs: float32 records stay float32).
    out = np.empty_like(early_probs)
    for lo in range(0, len(labels), CHUNK_ROWS):
        hi = lo + CHUNK_ROWS
        out[lo:hi] = 0.5 * early_probs[lo:hi] + 0.5 * neighbor_label_probs(neighbors[lo:hi], labels, early_probs.shape[1])
    return out


@register_check("label_issues", kind="samples", requires=("train", "pred_probs"))
def label_issues(evidence: Evidence) -> CheckResult:
    """Samples whose given label is probably wrong (score = estimated probability of the given label).

    Flags by confident learning (per-class thresholds, confident joint, prune by the
    estimated noise rate) applied to :func:`label_issue_probs`, so the number flagged
    comes from the data, not from a known noise rate. The suggested label is the most
    probable class. AUM, forgetting events and cartography confidence/variability of
    each sample are reported alongside (columns ``aum``, ``forgetting_events``,
    ``confidence``, ``variability``) when per-epoch records are available.

    References:
        Northcutt et al., "Confident Learning", JAIR 2021; Pleiss et al., "AUM", NeurIPS 2020;
        Toneva et al., "An Empirical Study of Example Forgetting", ICLR 2019;
        Swayamdipta et al., "Dataset Cartography", EMNLP 2020.
    """
    data = evidence.train
    labels = data.labels.numpy()
    index = data.index.numpy()
    pred_probs = np.asarray(evidence.pred_probs)
    if pred_probs.dtype not in (np.float32, np.float64):
        pred_probs = pred_probs.astype(np.float64)
    probs = label_issue_probs(labels, pred_probs, evidence.embeddings)
    flag = prune_by_noise_rate(labels, probs)
    score = np.clip(probs[np.arange(len(labels)), labels], 0.0, 1.0)
    table = pd.DataFrame({
        "index": index, "score": score, "flag": flag, "given_label": labels,
        "suggested_label": np.where(flag, probs.argmax(axis=1), labels),
    })
    if evidence.samples is not None and len(evidence.samples):
        window = evidence.extra.get("early_learning_epoch")
        curves = learning_curve_summary(evidence.samples, last_epoch=window)
        table = table.merge(curves, how="left", left_on="index", right_index=True)
    n_flag = int(flag.sum())
    findings = []
    if n_flag:
        share = n_flag / len(labels)
        worst = table.sort_values("score").head(10)["index"].tolist()
        findings.append(Finding(
            check="label_issues", severity=Severity.WARNING if share >= 0.01 else Severity.INFO, subject="dataset",
            message=f"{n_flag} of {len(labels)} samples ({share:.1%}) probably carry a wrong label",
            evidence={"flagged": n_flag, "share": share, "worst_indices": worst,
                      "neighbor_search": neighbor_search_method(len(labels)) if evidence.embeddings is not None else None},
            suggestion="review the flagged rows of sample_issues.csv (sorted by label_score); relabel them to "
            "suggested_label or drop them, then retrain",
        ))
    return CheckResult(check="label_issues", findings=findings, samples=table)
