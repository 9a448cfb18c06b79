"""Nearest neighbours and robust outlyingness, shared by the neighbour-based sample checks."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

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


def nearest_neighbors(
    points: np.ndarray, k: int, *, metric: Literal["euclidean", "cosine"] = "euclidean", chunk: int = 2048,
    exact: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each point's ``k`` nearest other points, ``[N, k]`` each.

    Exact search by blocks of ``chunk`` rows: one matrix product and one top-k per block
    (O(N^2 D) work, O(chunk N) memory); distances are finished only for the k winners.
    The point itself is excluded; exact duplicates of it are not, and come first.

    Args:
        points: ``[N, D]``.
        k: neighbours per point (at most N - 1).
        metric: ``"euclidean"`` or ``"cosine"`` (1 - cosine similarity).
        chunk: rows per block.
        exact: float64 arithmetic, so that duplicates come out at distance 0 (float32 otherwise).
    """
    dtype = torch.float64 if exact else torch.float32
    x = torch.as_tensor(np.ascontiguousarray(points)).to(dtype)
    n = len(x)
    k = max(1, min(k, n - 1))
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sq = (x * x).sum(dim=1)
    dists, idxs = [], []
    for lo in range(0, n, chunk):
        block = x[lo : lo + chunk]
        rows = torch.arange(lo, lo + len(block))
        # Rank by -2<a,b> + |b|^2 (the |a|^2 term is the same along a row); cosine: by -<a,b>.
        key = -(block @ x.T) if metric == "cosine" else sq[None, :] - 2.0 * (block @ x.T)
        key[rows - lo, rows] = float("inf")  # not its own neighbour
        top = torch.topk(key, k, dim=1, largest=False)
        if metric == "cosine":
            d = (1.0 + top.values).clamp_min(0.0)
        else:
            d = (top.values + sq[lo : lo + chunk, None]).clamp_min(0.0).sqrt()
        dists.append(d.double())
        idxs.append(top.indices)
    return torch.cat(dists).numpy(), torch.cat(idxs).numpy()


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
