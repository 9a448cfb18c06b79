"""Shrink long step series for the page without hiding spikes.

A run of 100k samples for 20 epochs has tens of thousands of steps; plotting each costs
page weight and load time for detail no screen shows. Min-max decimation keeps, per
bucket of consecutive steps, the lowest and the highest value, so every spike and every
dip stays visible at any zoom the page offers.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 2000  # per series; a plot is at most ~1000 px wide, two points per pixel column


def minmax_indices(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Positions to keep: all of them when few, else the argmin and argmax of each bucket.

    Args:
        values: ``[N]`` float series (NaN allowed: a bucket of only NaN keeps its first
            position, so a non-finite stretch still shows as a gap).
        max_points: at most this many positions are returned (plus the last one).

    Returns:
        sorted unique int positions, always including the first and the last.
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    width = int(np.max(np.diff(edges)))
    # Pad every bucket to the same width so argmin/argmax run as one vectorised call.
    starts = edges[:-1]
    grid = starts[:, None] + np.arange(width)[None, :]
    valid = grid < edges[1:, None]
    grid = np.minimum(grid, n - 1)
    block = np.where(valid, values[grid], np.nan)
    finite = np.isfinite(block)
    low = np.where(finite, block, np.inf).argmin(axis=1)
    high = np.where(finite, block, -np.inf).argmax(axis=1)
    rows = np.arange(buckets)
    keep = np.concatenate([grid[rows, low], grid[rows, high], [0, n - 1]])
    return np.unique(keep)


def bucket_columns(n: int, max_columns: int) -> np.ndarray:
    """Bucket id of each of ``n`` consecutive columns so there are at most ``max_columns``."""
    if n <= max_columns:
        return np.arange(n)
    return (np.arange(n) * max_columns // n).astype(np.int64)
