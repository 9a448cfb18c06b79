"""The typical update-to-weight ratio of a run: median over weight layers, per sampled step."""

from __future__ import annotations

import warnings

import numpy as np

from trainground.diagnosis.checks._common import matrix, trainable_weight_layers
from trainground.diagnosis.evidence import Evidence


def typical_update_ratio(evidence: Evidence) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the median over trainable weight layers of ||delta w|| / ||w|| (finite values only)."""
    layers = evidence.layers
    names = trainable_weight_layers(layers)
    ratio = matrix(layers, "update_ratio")
    if ratio.empty or not names:
        return np.empty(0, dtype=np.int64), np.empty(0)
    values = ratio[[n for n in names if n in ratio.columns]].to_numpy()
    values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():  # a step whose layers are all NaN gives NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(values, axis=1) if values.size else np.empty(0)
    ok = np.isfinite(typical)
    return ratio.index.to_numpy()[ok], typical[ok]
