"""Nearest neighbours and robust outlyingness, shared by the neighbour-based sample checks."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

# Iglewicz & Hoaglin's cut-off for the modified z-score: beyond it a point is an outlier
# of a roughly normal bulk (here: of log-distances). A statistical convention, not a fit.
ROBUST_Z_CUTOFF = 3.5


def as_points(values: np.ndarray, *, standardize: bool) -> np.ndarray:
    """``[N, ...]`` -> ``[N, D]`` float64; columns scaled to unit variance when ``standardize``
    (constant columns are left at zero), so no single feature's unit dominates distances."""
    points = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if standardize and len(points) > 1:
        std = points.std(axis=0)
        points = (points - points.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return points


def nearest_neighbors(points: np.ndarray, k: int, *, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each point's ``k`` nearest other points, ``[N, k]`` each.

    The point itself is excluded even when exact duplicates tie with it at distance 0.
    """
    n = len(points)
    k = max(1, min(k, n - 1))
    search = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(points)
    dist, idx = search.kneighbors(points)
    # Drop each row's own entry (it need not be first when duplicates tie at distance 0).
    own = idx == np.arange(n)[:, None]
    no_self = ~own.any(axis=1)
    own[no_self, -1] = True  # row lists k+1 others: drop the farthest
    keep = ~own
    return dist[keep].reshape(n, k), idx[keep].reshape(n, k)


def neighbor_label_probs(
    neighbor_index: np.ndarray, labels: np.ndarray, num_classes: int,
) -> np.ndarray:
    """Share of each class among a sample's neighbours, ``[N, K]``, with one pseudo-count
    spread uniformly (so no class gets probability 0 from a handful of neighbours)."""
    n, k = neighbor_index.shape
    counts = np.zeros((n, num_classes))
    np.add.at(counts, (np.repeat(np.arange(n), k), labels[neighbor_index].reshape(-1)), 1.0)
    return (counts + 1.0 / num_classes) / (k + 1.0)


def robust_z(values: np.ndarray) -> np.ndarray:
    """Modified z-score ``(v - median) / (1.4826 * MAD)``; 0 where the spread is 0.

    References:
        Iglewicz & Hoaglin, "How to Detect and Handle Outliers", ASQC 1993.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros_like(values)
    med = np.median(values[finite])
    mad = 1.4826 * np.median(np.abs(values[finite] - med))
    if mad <= 0:
        return np.zeros_like(values)
    return (values - med) / mad


def z_to_score(z: np.ndarray) -> np.ndarray:
    """Map an outlyingness z-score to a score in [0, 1], low = bad, 0.5 at the cut-off."""
    return 1.0 / (1.0 + np.exp(np.clip(z - ROBUST_Z_CUTOFF, -50, 50)))
