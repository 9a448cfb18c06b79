"""The approximate neighbour search agrees with the exact one on small data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from trainground.diagnosis import neighbors
from trainground.diagnosis.checks.label_issues import label_issue_probs
from trainground.diagnosis.confident_learning import prune_by_noise_rate
from trainground.diagnosis.neighbors import as_points, nearest_neighbors, neighbor_search_method

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return as_points(x, standardize=True), y


def _recall(exact_idx: np.ndarray, approx_idx: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) for a, b in zip(exact_idx, approx_idx)]
    return float(np.sum(hits)) / exact_idx.size


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ivf_recall_against_exact(digits, metric):
    points, _ = digits
    d_exact, i_exact = nearest_neighbors(points, 10, metric=metric, method="exact")
    d_ivf, i_ivf = nearest_neighbors(points, 10, metric=metric, method="ivf")
    assert i_ivf.shape == i_exact.shape == (len(points), 10)
    assert not (i_ivf == np.arange(len(points))[:, None]).any(), "a point is its own neighbour"
    assert _recall(i_exact, i_ivf) >= 0.99
    # Distances are the real distances of the returned points, sorted.
    assert np.all(np.diff(d_ivf, axis=1) >= -1e-5)
    # The index may miss a true nearest neighbour, never invent a closer one.
    same = np.isclose(d_ivf[:, 0], d_exact[:, 0], rtol=1e-3, atol=1e-3)
    assert same.mean() >= 0.98
    assert np.all(d_ivf[:, 0] >= d_exact[:, 0] - 1e-3)


def test_ivf_recall_on_class_clusters():
    """Learned representations are class clusters: 20,000 points of 100 classes in 32-D."""
    rng = np.random.default_rng(1)
    true = rng.integers(0, 100, 20_000)
    points = (rng.standard_normal((100, 32)) * 3.0)[true] + 1.5 * rng.standard_normal((20_000, 32))
    _, i_exact = nearest_neighbors(points, 10, metric="cosine", method="exact")
    _, i_ivf = nearest_neighbors(points, 10, metric="cosine", method="ivf")
    assert _recall(i_exact, i_ivf) >= 0.99


def test_ivf_keeps_exact_duplicates_at_zero():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 8))
    points[10] = points[3]
    dist, idx = nearest_neighbors(points, 1, method="ivf")
    assert idx[10, 0] == 3 and idx[3, 0] == 10
    assert dist[10, 0] == 0.0 and dist[3, 0] == 0.0


def test_method_by_size(monkeypatch):
    assert neighbor_search_method(1000) == "exact"
    assert neighbor_search_method(neighbors.EXACT_MAX_POINTS + 1) == "ivf"
    assert neighbor_search_method(10**7, "exact") == "exact"
    monkeypatch.setattr(neighbors, "EXACT_MAX_POINTS", 100)
    assert neighbor_search_method(101) == "ivf"


def test_label_issues_agree_with_exact_search(digits, monkeypatch):
    """The flags of the label check barely move when its neighbour vote is approximate."""
    points, y = digits
    rng = np.random.default_rng(0)
    labels = y.copy()
    flip = rng.random(len(y)) < 0.2
    labels[flip] = (labels[flip] + rng.integers(1, 10, flip.sum())) % 10
    # Early-learning probabilities of a middling model: the true class favoured, noisily.
    logits = rng.normal(size=(len(y), 10)) + 2.0 * np.eye(10)[y]
    early = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    exact_flags = prune_by_noise_rate(labels, label_issue_probs(labels, early, points))
    monkeypatch.setattr(neighbors, "EXACT_MAX_POINTS", 100)  # force the index on 1,797 points
    approx_flags = prune_by_noise_rate(labels, label_issue_probs(labels, early, points))
    jaccard = (exact_flags & approx_flags).sum() / (exact_flags | approx_flags).sum()
    assert jaccard >= 0.95


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_flat_index_is_the_same_exact_search(digits, metric, monkeypatch):
    """Above FLAT_MIN_POINTS the exact search runs on faiss's flat index: same neighbours."""
    points, _ = digits
    d_blocks, i_blocks = nearest_neighbors(points, 10, metric=metric)
    monkeypatch.setattr(neighbors, "FLAT_MIN_POINTS", 100)
    d_flat, i_flat = nearest_neighbors(points, 10, metric=metric)
    np.testing.assert_allclose(d_flat, d_blocks, atol=1e-4)
    assert _recall(i_blocks, i_flat) >= 0.999  # only near-ties may swap


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ivf_on_principal_components_agrees_with_exact(metric):
    """Points wider than PCA_MIN_DIM are indexed by their principal components; the candidates
    are re-ranked in all the columns, so the neighbours and their distances match the exact search."""
    rng = np.random.default_rng(2)
    true = rng.integers(0, 20, 4000)
    # a learned representation's shape: class clusters in a few directions of 128 columns
    mixing = rng.standard_normal((24, 128))
    points = ((rng.standard_normal((20, 24)) * 3.0)[true] + rng.standard_normal((4000, 24))) @ mixing
    points = np.maximum(points + 0.1 * rng.standard_normal((4000, 128)), 0.0)  # ReLU-like units
    points[7] = points[3]
    info: dict = {}
    # float64 reference: the float32 blocks put a duplicate at 0.06 here (|a|^2 + |b|^2 - 2ab)
    d_exact, i_exact = nearest_neighbors(points, 10, metric=metric, method="exact", exact=True)
    d_ivf, i_ivf = nearest_neighbors(points, 10, metric=metric, method="ivf", info=info)
    assert info["method"] == "ivf" and neighbors.PCA_MIN_DIM <= info["pca_dim"] < 128
    assert not (i_ivf == np.arange(len(points))[:, None]).any()
    assert _recall(i_exact, i_ivf) >= 0.99
    assert np.all(np.diff(d_ivf, axis=1) >= -1e-6)
    same = i_ivf == i_exact
    np.testing.assert_allclose(d_ivf[same], d_exact[same], rtol=1e-3, atol=1e-3)
    assert i_ivf[7, 0] == 3 and d_ivf[7, 0] == 0.0


def test_search_records_what_ran():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((300, 80))
    info: dict = {}
    nearest_neighbors(points, 5, info=info)
    assert info["method"] == "exact"
    info = {}
    nearest_neighbors(points, 5, method="ivf", info=info)
    assert info["method"] == "ivf" and info["dim"] == 80 and info["cells"] >= 1 and info["pca_dim"] <= 80
