"""One neighbour search per space for a whole diagnosis, with the same results as separate searches."""

from __future__ import annotations

import numpy as np
import torch

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis import Evidence, get_check
from trainground.diagnosis.label_probs import label_issue_probs, trusted_samples
from trainground.diagnosis.neighbor_cache import NeighborCache, exact_nearest
from trainground.diagnosis.neighbors import nearest_neighbors


def _data(seed: int = 0, n: int = 300) -> IndexedDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(3, 6))[y] * 4 + rng.normal(size=(n, 6))
    x[:5] = x[5:10]  # five exact duplicates
    return IndexedDataset(features=torch.tensor(x, dtype=torch.float32), labels=torch.tensor(y), index=torch.arange(n),
                          encoder=LabelEncoder(("a", "b", "c")), kind="table", name="blobs")


def test_outlier_and_near_duplicate_checks_share_one_search():
    evidence = Evidence(train=_data())
    outliers = get_check("outliers").fn(evidence).samples
    duplicates = get_check("near_duplicates").fn(evidence).samples
    assert evidence.neighbors.searches_run == 1
    # the same results as each check with its own search
    assert outliers.equals(get_check("outliers").fn(Evidence(train=_data())).samples)
    assert duplicates.equals(get_check("near_duplicates").fn(Evidence(train=_data())).samples)
    assert set(duplicates.loc[duplicates["exact_duplicate"], "index"]) == set(range(10))


def test_label_trust_and_label_check_share_the_representation_search():
    data = _data(1)
    labels = data.labels.numpy()
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), len(labels)).astype(np.float32)
    embeddings = rng.normal(size=(len(labels), 8)).astype(np.float32)
    cache = NeighborCache()
    trusted_samples(labels, probs, embeddings, cache=cache)
    shared = label_issue_probs(labels, probs, embeddings, cache=cache)
    assert cache.searches_run == 1
    np.testing.assert_array_equal(shared, label_issue_probs(labels, probs, embeddings))
    label_issue_probs(labels, probs, embeddings.copy(), cache=cache)  # other embeddings: searched anew
    assert cache.searches_run == 2


def test_exact_nearest_reranks_candidates_in_float64():
    points = np.random.default_rng(3).normal(size=(200, 5))
    points[7] = points[3]
    _, candidates = nearest_neighbors(points, 10)
    dist, nearest = exact_nearest(points, candidates)
    d_exact, i_exact = nearest_neighbors(points, 1, exact=True)
    np.testing.assert_allclose(dist, d_exact[:, 0], atol=1e-12)
    assert dist[3] == 0.0 and dist[7] == 0.0 and nearest[3] == 7
    assert (nearest != i_exact[:, 0]).sum() <= 1  # only where two nearest are tied (3 and 7 for each other)


def test_forget_lets_a_search_go_and_described_says_what_ran():
    points = np.random.default_rng(4).normal(size=(50, 4))
    cache = NeighborCache()
    assert cache.described("space") is None
    cache.search("space", points, lambda: points, 3)
    assert cache.described("space")["method"] == "exact"
    cache.forget("space")
    assert cache.described("space") is None
    cache.search("space", points, lambda: points, 3)
    assert cache.searches_run == 2  # searched again: nothing of the first was kept
