"""Min-max decimation keeps every extreme."""

from __future__ import annotations

import itertools

import numpy as np

from trainground.report.downsample import bucket_columns, minmax_indices


def test_short_series_are_kept_whole() -> None:
    assert minmax_indices(np.arange(10.0), 100).tolist() == list(range(10))


def test_long_series_keep_spikes_dips_and_both_ends() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=50_001)
    y[12_345], y[40_000] = 100.0, -100.0
    y[30_000:30_050] = np.nan
    keep = minmax_indices(y, 1000)
    assert len(keep) <= 1002 and np.all(np.diff(keep) > 0)
    assert {0, 12_345, 40_000, 50_000} <= set(keep.tolist())
    # every bucket's max survives: the decimated envelope equals the true one bucket by bucket
    edges = np.linspace(0, len(y), 501).astype(int)
    for a, b in itertools.pairwise(edges):
        part = y[a:b]
        if np.isfinite(part).any():
            kept = y[keep[(keep >= a) & (keep < b)]]
            assert np.nanmax(kept) == np.nanmax(part) and np.nanmin(kept) == np.nanmin(part)


def test_all_nan_buckets_do_not_crash() -> None:
    keep = minmax_indices(np.full(5000, np.nan), 100)
    assert keep[0] == 0 and keep[-1] == 4999


def test_bucket_columns() -> None:
    assert bucket_columns(5, 10).tolist() == [0, 1, 2, 3, 4]
    ids = bucket_columns(1000, 300)
    assert ids.max() == 299 and np.all(np.diff(ids) >= 0)
