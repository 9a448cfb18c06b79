"""One neighbour search per space and metric for a whole diagnosis.

The label checks (trust before the second pass, then ``label_issues``) search the learned
representation, the outlier and near-duplicate checks search the standardised features.
Each asked for its own search before, and at 20,000 samples the four searches were about a
third of ``trainground diagnose``'s time (profile in benchmarks/README.md, "Where the time
goes"). :class:`NeighborCache` runs each search once, at :data:`SHARED_K` neighbours, and
hands every later request for the same points (the same source object, the same metric)
the first ``k`` columns of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from trainground.diagnosis.neighbors import nearest_neighbors

# Neighbours kept by a shared search: the most any neighbour check asks for (k = 10 of the
# outlier check and of the label checks' vote; the near-duplicate check needs 1). A check
# asking for more gets its own search.
SHARED_K = 10

# Rows per block when exact distances to the candidates are recomputed in float64
# (block x k x D values at a time: 4096 x 10 x 256 x 8 bytes = 80 MiB at most).
EXACT_BLOCK_ROWS = 4096


@dataclass
class _Search:
    source: Any  # the object the points were made from (identity decides a hit)
    points: np.ndarray
    dist: np.ndarray
    idx: np.ndarray
    info: dict  # what ran (nearest_neighbors' ``info``: method, index, cells, probes, PCA width)


class NeighborCache:
    """Neighbour searches of one diagnosis, each run once and shared.

    ``search(space, source, make_points, k, metric=...)`` returns ``(points, dist, idx)``:
    the points ``make_points()`` built from ``source`` and their ``k`` nearest neighbours.
    A second request with the same ``space`` name, the same ``source`` object (``is``) and
    the same metric gets the stored result, sliced to ``k``; a different source object (e.g.
    the second pass's embeddings in place of the first's) is searched anew and replaces it.
    """

    def __init__(self) -> None:
        self._done: dict[tuple[str, str], _Search] = {}
        self.searches_run = 0  # how many searches actually ran (the tests read it)

    def search(
        self, space: str, source: Any, make_points: Callable[[], np.ndarray], k: int,
        *, metric: Literal["euclidean", "cosine"] = "euclidean",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (space, metric)
        found = self._done.get(key)
        if found is not None and found.source is not source:
            # other points (the second pass's representation): let the old ones go before the
            # new search (200,000 x 256 float32 is 205 MB)
            del self._done[key]
            found = None
        if found is None or found.idx.shape[1] < min(k, len(found.points) - 1):
            points = make_points() if found is None else found.points
            info: dict = {}
            dist, idx = nearest_neighbors(points, max(k, SHARED_K), metric=metric, info=info)
            self.searches_run += 1
            found = self._done[key] = _Search(source=source, points=points, dist=dist, idx=idx, info=info)
        return found.points, found.dist[:, :k], found.idx[:, :k]

    def forget(self, space: str, *, metric: Literal["euclidean", "cosine"] = "euclidean") -> None:
        """Let the search of ``space`` go (its points and results), e.g. before the second pass,
        whose representation replaces the first's: 200,000 x 256 float32 points are 205 MB."""
        self._done.pop((space, metric), None)

    def described(self, space: str, *, metric: Literal["euclidean", "cosine"] = "euclidean") -> dict | None:
        """What the search of ``space`` ran (``method``: exact or ivf, and the index's settings),
        for the findings' evidence; None before it ran."""
        found = self._done.get((space, metric))
        return None if found is None else dict(found.info)


def exact_nearest(points: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest of each row's ``candidates`` (``[N, k]`` positions) by float64 euclidean
    distance, and that distance: exact duplicates come out at exactly 0 whatever the
    precision of the search that found the candidates. Ties go to the earlier candidate."""
    x = np.asarray(points, dtype=np.float64)
    dist = np.empty(len(x))
    nearest = np.empty(len(x), dtype=np.int64)
    for lo in range(0, len(x), EXACT_BLOCK_ROWS):
        rows = candidates[lo:lo + EXACT_BLOCK_ROWS]
        d = np.sqrt(((x[rows] - x[lo:lo + len(rows), None, :]) ** 2).sum(axis=2))
        best = d.argmin(axis=1)
        dist[lo:lo + len(rows)] = d[np.arange(len(rows)), best]
        nearest[lo:lo + len(rows)] = rows[np.arange(len(rows)), best]
    return dist, nearest
