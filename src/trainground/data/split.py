"""Seeded, stratified hold-out splits by position."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from trainground.errors import DataError


def stratified_split(
    labels: np.ndarray, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a (train, held-out) split with class proportions kept in both parts.

    Falls back to an unstratified split when a class is too small to appear in both
    parts (stratification is a nicety there, not a requirement).

    Args:
        labels: ``[N]`` class ids.
        fraction: share of samples held out, in (0, 1).
        seed: makes the split reproducible.

    Returns:
        Sorted positions of the training part and of the held-out part.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    # scikit-learn's rule for a float test_size (ceil), so splits match train_test_split's.
    n_held = int(np.ceil(fraction * n))
    if n_held < 1 or n - n_held < 1:
        raise DataError(
            f"cannot hold out {fraction:.0%} of {n} samples: each part needs at least one sample"
        )
    positions = np.arange(n)
    _, counts = np.unique(labels, return_counts=True)
    n_classes = len(counts)
    stratify = labels if counts.min() >= 2 and n_held >= n_classes and n - n_held >= n_classes else None
    train, held = train_test_split(
        positions, test_size=fraction, stratify=stratify, random_state=seed, shuffle=True
    )
    return np.sort(train), np.sort(held)
