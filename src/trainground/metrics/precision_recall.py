"""Improved precision and recall of a generative model: k-NN manifolds in a feature space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trainground.metrics._arrays import as_features

# Rows of the query matrix per distance block: bounds memory at block * N floats.
_BLOCK = 1024


def knn_radii(features: Tensor, k: int) -> Tensor:
    """Distance from each row to its ``k``-th nearest other row (the radius of its k-NN ball)."""
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} samples, got {k}")
    radii = torch.empty(n, dtype=features.dtype)
    for start in range(0, n, _BLOCK):
        d = torch.cdist(features[start:start + _BLOCK], features)
        # The k+1-th smallest distance: the smallest is the row itself (0).
        radii[start:start + _BLOCK] = d.kthvalue(k + 1, dim=1).values
    return radii


def manifold_coverage(queries: Tensor, support: Tensor, radii: Tensor) -> Tensor:
    """For each query row, whether it lies in at least one ball ``|q - s_j| <= radii_j``."""
    inside = torch.empty(queries.shape[0], dtype=torch.bool)
    for start in range(0, queries.shape[0], _BLOCK):
        d = torch.cdist(queries[start:start + _BLOCK], support)
        inside[start:start + _BLOCK] = (d <= radii[None, :]).any(dim=1)
    return inside


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision (fidelity) and recall (diversity), and their harmonic mean."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def to_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


def precision_recall(real: Tensor | np.ndarray, fake: Tensor | np.ndarray, *, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` samples against ``real`` ones.

    The real manifold is the union of balls around each real feature vector reaching its
    ``k``-th nearest real neighbour; precision is the share of fake samples inside it. Recall
    swaps the roles: the share of real samples inside the fake manifold. A collapsed generator
    keeps a high precision (its few samples look real) and loses recall.

    Args:
        real: ``[N, D]`` features of real samples (e.g. a classifier's penultimate layer).
        fake: ``[M, D]`` features of generated samples, from the same extractor.
        k: neighbours defining each ball; 3 is the paper's choice (a good bias/variance trade).

    References:
        Kynkaanniemi, Karras, Laine, Lehtinen, Aila. Improved Precision and Recall Metric for
        Assessing Generative Models. NeurIPS 2019.
    """
    r, f = as_features(real, "real"), as_features(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features differ in width: {r.shape[1]} vs {f.shape[1]}")
    precision = manifold_coverage(f, r, knn_radii(r, k)).double().mean().item()
    recall = manifold_coverage(r, f, knn_radii(f, k)).double().mean().item()
    return PrecisionRecall(precision=precision, recall=recall)
