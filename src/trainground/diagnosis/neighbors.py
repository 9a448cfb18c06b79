"""Nearest neighbours and robust outlyingness, shared by the neighbour-based sample checks."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch

# Iglewicz & Hoaglin's cut-off for the modified z-score: beyond it a point is an outlier
# of a roughly normal bulk (here: of log-distances). A statistical convention, not a fit.
ROBUST_Z_CUTOFF = 3.5

# Up to this many points the search is exact. Its work grows as N^2 D, and the top-k runs
# over N keys per row: at 50,000 points of 40 dimensions one float64 search was measured at
# 195 s on the loaded 2-core machine (about 25 s idle), and a diagnosis runs up to four;
# at 20,000 that is (2/5)^2 of it, a few seconds idle. The inverted file grows as N sqrt(N).
EXACT_MAX_POINTS = 20_000

NeighborMethod = Literal["auto", "exact", "ivf"]

# Above this many points the exact search runs on faiss's flat index when faiss is installed
# (1.9x faster than the blocks below at 20,000 x 256: 13.2 s vs 24.7 s, loaded machine). Its
# sums run in another order, so near-ties among the k-th neighbours can swap; below 10,000
# points the blocks take about a second, and keeping them there also keeps benchmark A
# (digits, 4,000-sample mnist1d) bit-identical to its published rows (with the flat index
# one of its 18 runs moved: mnist1d asym30 seed 2, F1 0.645 -> 0.641).
FLAT_MIN_POINTS = 10_000

# Memory of one block of the exact search (rows x N keys): 64 MiB keeps the search's own
# memory small beside the data at any N, and a block still holds enough rows (160 at
# 50,000 float64 points) for the matrix product to run at full speed.
BLOCK_BYTES = 64 * 2**20

# The approximate index is an inverted file (Jegou et al. 2011, as faiss implements it):
# k-means cells, and each query scans the points of the cells nearest to it. With about
# 4 sqrt(N) cells of about sqrt(N) / 4 points, scanning 16 of them costs 4 sqrt(N) D per
# query instead of N D, and on clustered learned representations it returns more than 0.99
# of the exact 10 nearest neighbours (measured on digits and on generated class clusters,
# tests/diagnosis/test_neighbors.py). k-means is trained on 32 points per cell (faiss's
# guidance is 39-256; the cells only route the search, so a coarser fit costs recall, not
# correctness) for 10 iterations.
IVF_CELLS_PER_SQRT_N = 4
IVF_PROBES = 16
IVF_TRAIN_PER_CELL = 32
IVF_KMEANS_ITERATIONS = 10

# Wider points are searched in their principal components (PCA fitted on the k-means
# sample): the index, its k-means and every scanned distance cost in proportion to the
# width. The components kept hold PCA_VARIANCE of the variance, so the distances the index
# ranks by differ from the full ones by at most that residual's share on average; the index
# returns RERANK_FACTOR x k candidates, and those are re-ranked by their exact distance in
# all the columns, so the k kept and their distances are exact among the candidates.
PCA_MIN_DIM = 64
PCA_VARIANCE = 0.99
RERANK_FACTOR = 2


def neighbor_search_method(n: int, method: NeighborMethod = "auto") -> Literal["exact", "ivf"]:
    """The search :func:`nearest_neighbors` runs for ``n`` points: exact up to
    :data:`EXACT_MAX_POINTS`, faiss's inverted-file index above it (exact, with a warning, when
    faiss is not installed: ``pip install 'trainground[scale]'``)."""
    if method == "exact" or (method == "auto" and n <= EXACT_MAX_POINTS):
        return "exact"
    try:
        import faiss  # noqa: F401
    except ImportError:
        if method == "ivf":
            from trainground.errors import ConfigError

            raise ConfigError("approximate neighbour search needs faiss: pip install 'trainground[scale]'") from None
        warnings.warn(
            f"exact neighbour search on {n} points is slow (O(N^2)); pip install 'trainground[scale]' "
            "for the approximate index", stacklevel=3,
        )
        return "exact"
    return "ivf"


def as_points(values: np.ndarray, *, standardize: bool, dtype: type = np.float64) -> np.ndarray:
    """``[N, ...]`` -> ``[N, D]`` (float64 unless ``dtype`` says otherwise); columns scaled to
    unit variance when ``standardize`` (constant columns are left at zero), so no single
    feature's unit dominates distances. Standardised in place on one copy: the peak is two
    N x D arrays, not four (the three float64 temporaries were about 1.2 GB at 200,000 x 256)."""
    points = np.asarray(values, dtype=dtype).reshape(len(values), -1)
    if standardize and len(points) > 1:
        std = points.std(axis=0)
        mean = points.mean(axis=0)
        if isinstance(values, np.ndarray) and np.shares_memory(points, values):
            points = points - mean  # the one copy: the caller's array is never changed
        else:
            points -= mean  # asarray already copied (another dtype or a tensor)
        points /= np.where(std > 0, std, 1.0).astype(points.dtype)
    return points


# Width a streamed feature store (a large image folder, decoded in chunks) is randomly
# projected to before the neighbour search. A Gaussian projection keeps every squared
# distance's expected value, with a relative spread of about sqrt(2 / d) (9 % at 256;
# Johnson & Lindenstrauss 1984), and keeps exact duplicates at distance 0.
PROJECTED_DIM = 256


def feature_points(features, *, standardize: bool, dim: int = PROJECTED_DIM, seed: int = 0) -> np.ndarray:
    """:func:`as_points` for a tensor or array; for a store decoded in chunks (anything with
    ``split``, e.g. ``data.image_files.ImageFiles``) the same standardised points, randomly
    projected to ``dim`` columns when wider, built chunk by chunk (two passes over the store,
    memory N x min(D, dim) instead of N x D)."""
    if isinstance(features, (np.ndarray, torch.Tensor)):
        return as_points(features.numpy() if isinstance(features, torch.Tensor) else features, standardize=standardize)
    n, width = len(features), int(np.prod(tuple(features.shape[1:])))
    mean, scale = np.zeros(width), np.ones(width)
    if standardize and n > 1:
        total, squares = np.zeros(width), np.zeros(width)
        for chunk in features.split():
            flat = chunk.reshape(len(chunk), -1).double().numpy()
            total += flat.sum(axis=0)
            squares += (flat**2).sum(axis=0)
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
        scale = np.where(std > 1e-12, std, 1.0)
    projection = None
    if width > dim:
        projection = np.random.default_rng(seed).standard_normal((width, dim)) / np.sqrt(dim)
    points = np.empty((n, width if projection is None else dim))
    start = 0
    for chunk in features.split():
        flat = (chunk.reshape(len(chunk), -1).double().numpy() - mean) / scale
        points[start:start + len(flat)] = flat if projection is None else flat @ projection
        start += len(flat)
    return points


def nearest_neighbors(
    points: np.ndarray, k: int, *, metric: Literal["euclidean", "cosine"] = "euclidean", chunk: int = 2048,
    exact: bool = False, method: NeighborMethod = "auto", info: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each point's ``k`` nearest other points, ``[N, k]`` each.

    Exact search by blocks of ``chunk`` rows: one matrix product and one top-k per block
    (O(N^2 D) work, O(chunk N) memory); distances are finished only for the k winners.
    The point itself is excluded; exact duplicates of it are not, and come first. Above
    :data:`EXACT_MAX_POINTS` points (or with ``method="ivf"``) the search is approximate,
    on faiss's inverted-file index (:func:`neighbor_search_method` says which one runs).

    Args:
        points: ``[N, D]``.
        k: neighbours per point (at most N - 1).
        metric: ``"euclidean"`` or ``"cosine"`` (1 - cosine similarity).
        chunk: most rows per block (fewer when a block would pass :data:`BLOCK_BYTES`).
        exact: float64 arithmetic, so that duplicates come out at distance 0 (float32 otherwise).
        method: ``"auto"`` (by size), ``"exact"`` or ``"ivf"``.
        info: filled with what ran (``method``, and for the index its cells, probes and
            PCA width), for the run's record.

    References:
        Jegou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI
        2011 (the inverted file); Douze et al., "The Faiss library", 2024.
    """
    if neighbor_search_method(len(points), method) == "ivf":
        return _ivf_neighbors(points, k, metric=metric, info=info)
    if not exact and len(points) > FLAT_MIN_POINTS and _has_faiss():
        # the same exact float32 search on faiss's flat index (BLAS blocks and a heap per
        # query, no chunk x N top-k): measured 1.9x faster at 20,000 x 256 on this machine
        return _ivf_neighbors(points, k, metric=metric, flat=True, info=info)
    if info is not None:
        info.update(method="exact", index="blocks")
    dtype = torch.float64 if exact else torch.float32
    x = torch.as_tensor(np.ascontiguousarray(points)).to(dtype)
    n = len(x)
    k = max(1, min(k, n - 1))
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sq = (x * x).sum(dim=1)
    # rows per block so that one block of keys stays within BLOCK_BYTES (at 50,000 float64
    # points 2048 rows were 0.8 GB per block, three times over in temporaries)
    chunk = max(1, min(chunk, BLOCK_BYTES // max(1, n * x.element_size())))
    dists, idxs = [], []
    for lo in range(0, n, chunk):
        block = x[lo : lo + chunk]
        rows = torch.arange(lo, lo + len(block))
        # Rank by -2<a,b> + |b|^2 (the |a|^2 term is the same along a row); cosine: by -<a,b>.
        # In place: one chunk x N matrix per block, no temporaries of its size.
        key = block @ x.T
        if metric == "cosine":
            key.neg_()
        else:
            key.mul_(-2.0).add_(sq[None, :])
        key[rows - lo, rows] = float("inf")  # not its own neighbour
        top = torch.topk(key, k, dim=1, largest=False)
        if metric == "cosine":
            d = (1.0 + top.values).clamp_min(0.0)
        else:
            d = (top.values + sq[lo : lo + chunk, None]).clamp_min(0.0).sqrt()
        dists.append(d.double())
        idxs.append(top.indices)
    return torch.cat(dists).numpy(), torch.cat(idxs).numpy()


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _ivf_neighbors(
    points: np.ndarray, k: int, *, metric: Literal["euclidean", "cosine"], flat: bool = False,
    info: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_neighbors` on a faiss inverted-file index (float32), or with ``flat`` on
    faiss's exact flat index: same shapes, same order, the point itself left out (its exact
    duplicates kept, at distance 0). Wider than :data:`PCA_MIN_DIM` columns, the index holds
    the points' principal components (:func:`pca_projection`) and its :data:`RERANK_FACTOR` x k
    candidates are re-ranked by their exact distance in all the columns."""
    import faiss

    x = np.ascontiguousarray(points, dtype=np.float32)  # no copy of float32 points
    n, dim = x.shape
    k = max(1, min(k, n - 1))
    faiss.omp_set_num_threads(torch.get_num_threads())  # the same budget as the training
    # cosine: unit rows (norms kept aside, so the principal-component path makes no N x D copy)
    norms = np.maximum(np.linalg.norm(x, axis=1), 1e-12).astype(np.float32) if metric == "cosine" else None
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if flat:
        x = x if norms is None else x / norms[:, None]
        index = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
        index.add(x)
        if info is not None:
            info.update(method="exact", index="faiss flat")
        return _without_self(*index.search(x, k + 1), k=k, metric=metric)
    cells = max(1, min(n // IVF_TRAIN_PER_CELL, int(IVF_CELLS_PER_SQRT_N * np.sqrt(n))))
    # A fixed-seed sample: the same data give the same cells (and components), so the run is reproducible.
    sample = np.sort(np.random.default_rng(0).choice(n, min(n, IVF_TRAIN_PER_CELL * cells), replace=False))
    projection = None
    if dim > PCA_MIN_DIM:
        projection = pca_projection(x[sample] if norms is None else x[sample] / norms[sample, None])
    if info is not None:
        info.update(method="ivf", index="faiss IVF", cells=cells, probes=min(IVF_PROBES, cells), dim=dim,
                    pca_dim=None if projection is None else projection[1].shape[1])
    if projection is None:
        search_x, search_metric = (x if norms is None else x / norms[:, None]), faiss_metric
    else:  # in the principal components the search is euclidean (for unit rows it ranks as cosine)
        search_x, search_metric = _project(x, *projection, norms=norms), faiss.METRIC_L2
    width = search_x.shape[1]
    quantizer = faiss.IndexFlatIP(width) if search_metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(width)
    index = faiss.IndexIVFFlat(quantizer, width, cells, search_metric)
    index.cp.niter = IVF_KMEANS_ITERATIONS
    index.cp.min_points_per_centroid = 1  # the sample below is deliberately small
    index.train(search_x[sample])
    index.add(search_x)
    index.nprobe = min(IVF_PROBES, cells)
    if projection is None:
        return _without_self(*index.search(search_x, k + 1), k=k, metric=metric)
    wide = min(n - 1, RERANK_FACTOR * k)
    values, found = index.search(search_x, wide + 1)
    del index, search_x
    _, candidates = _without_self(values, found, k=wide, metric="euclidean")
    del values, found
    return _rerank(x, candidates, k, metric=metric, norms=norms)


def pca_projection(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and ``[D, d]`` principal axes of ``sample`` holding :data:`PCA_VARIANCE` of its
    variance (at least :data:`PCA_MIN_DIM` axes, at most D)."""
    mean = sample.mean(axis=0, dtype=np.float64)
    centred = sample.astype(np.float64) - mean
    values, vectors = np.linalg.eigh(centred.T @ centred)
    values, vectors = values[::-1].clip(min=0.0), vectors[:, ::-1]
    total = values.sum()
    kept = len(values) if total <= 0 else int(np.searchsorted(np.cumsum(values) / total, PCA_VARIANCE) + 1)
    kept = min(len(values), max(PCA_MIN_DIM, kept))
    return mean.astype(np.float32), np.ascontiguousarray(vectors[:, :kept], dtype=np.float32)


def _project(
    x: np.ndarray, mean: np.ndarray, axes: np.ndarray, *, norms: np.ndarray | None = None, block: int = 16384,
) -> np.ndarray:
    """``(x / norms - mean) @ axes`` by blocks of rows (``[N, d]`` float32, no N x D temporary)."""
    out = np.empty((len(x), axes.shape[1]), dtype=np.float32)
    for lo in range(0, len(x), block):
        rows = x[lo:lo + block] if norms is None else x[lo:lo + block] / norms[lo:lo + block, None]
        np.matmul(rows - mean, axes, out=out[lo:lo + block])
    return out


def _rerank(
    x: np.ndarray, candidates: np.ndarray, k: int, *, metric: Literal["euclidean", "cosine"],
    norms: np.ndarray | None = None, block: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of each row's ``candidates`` by the exact distance in all of ``x``'s
    columns (cosine: divided by the rows' ``norms``), nearest first; ties keep the candidates' order."""
    n = len(x)
    dist = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, block):
        rows = candidates[lo:lo + block]
        own = x[lo:lo + len(rows)]
        if metric == "cosine":
            assert norms is not None
            d = 1.0 - np.einsum("nkd,nd->nk", x[rows], own) / (norms[rows] * norms[lo:lo + len(rows), None])
        else:
            d = ((x[rows] - own[:, None, :]) ** 2).sum(axis=2)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(d, order, axis=1).astype(np.float64)
        dist[lo:lo + len(rows)] = np.clip(best, 0.0, None) if metric == "cosine" else np.sqrt(np.clip(best, 0.0, None))
        idx[lo:lo + len(rows)] = np.take_along_axis(rows, order, axis=1)
    return dist, idx


def _without_self(
    values: np.ndarray, found: np.ndarray, *, k: int, metric: Literal["euclidean", "cosine"],
) -> tuple[np.ndarray, np.ndarray]:
    """faiss's ``k + 1`` results per point -> distances and indices of ``k`` other points."""
    n = len(found)
    # Drop the point itself wherever it was returned; where it was not (its duplicates
    # filled the list, or the graph missed it), drop the farthest candidate instead.
    own = found == np.arange(n)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    found = found[keep].reshape(n, k)
    values = values[keep].reshape(n, k).astype(np.float64)
    if metric == "cosine":
        dist = np.clip(1.0 - values, 0.0, None)
    else:
        dist = np.sqrt(np.clip(values, 0.0, None))  # faiss returns squared L2
    missing = found < 0  # fewer than k reachable: never seen at ef >= 2 (k + 1), kept safe
    if missing.any():
        found = np.where(missing, found[:, :1], found)
        dist = np.where(missing, dist[:, :1], dist)
    return dist, found.astype(np.int64)


def neighbor_label_probs(
    neighbor_index: np.ndarray, labels: np.ndarray, num_classes: int,
) -> np.ndarray:
    """Share of each class among a sample's neighbours, ``[N, K]``, with one pseudo-count
    spread uniformly (so no class gets probability 0 from a handful of neighbours)."""
    n, k = neighbor_index.shape
    cells = np.repeat(np.arange(n) * num_classes, k) + labels[neighbor_index].reshape(-1)
    counts = np.bincount(cells, minlength=n * num_classes).reshape(n, num_classes)
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
