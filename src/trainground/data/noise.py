"""Seeded label noise for demos and benchmarks, drawn exactly as the reference protocol.

The draws (generator, calls, order) match the protocol the benchmarks compare
against bit for bit, so a seed names the same corrupted labels here and there:

* symmetric: ``round(rate * n)`` samples chosen without replacement each get a
  uniformly drawn *other* class, ``(y + offset) % K`` with ``offset`` in ``1..K-1``;
* asymmetric: in each class ``c`` of ``class_map`` (in class order),
  ``round(rate * n_c)`` members are relabelled ``class_map[c]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np

from trainground.errors import ConfigError

# the benchmark's asymmetric map for digits: pairs of look-alike digits swap
DIGIT_CONFUSION_MAP: Mapping[int, int] = {1: 7, 7: 1, 3: 8, 8: 3, 4: 9, 9: 4, 5: 6, 6: 5, 0: 2, 2: 0}


class NoisyLabels(NamedTuple):
    """Labels after noise, and which of them differ from the originals."""

    labels: np.ndarray
    is_corrupted: np.ndarray


def inject_label_noise(
    labels: np.ndarray,
    *,
    kind: Literal["symmetric", "asymmetric"],
    rate: float,
    seed: int,
    num_classes: int | None = None,
    class_map: Mapping[int, int] | None = None,
) -> NoisyLabels:
    """Corrupt a share of the labels, reproducibly.

    Args:
        labels: ``[N]`` integer class ids (left unchanged).
        kind: ``"symmetric"`` (any other class) or ``"asymmetric"`` (``class_map``).
        rate: share of samples (symmetric) or of each mapped class (asymmetric) to
            corrupt, in [0, 1).
        seed: seed of ``numpy.random.default_rng``.
        num_classes: K; defaults to ``max(labels) + 1``.
        class_map: for asymmetric noise, the class each class is flipped to; classes
            absent from it keep their labels.

    Returns:
        The noisy labels (same dtype as ``labels``) and the mask ``noisy != labels``.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or (len(y) and not np.issubdtype(y.dtype, np.integer)):
        raise ConfigError(f"labels must be a 1-D array of integer class ids, got {y.dtype} {y.shape}")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"noise rate must be in [0, 1), got {rate}")
    k = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if len(y) else 0)
    if k < 2:
        raise ConfigError(f"label noise needs at least 2 classes, got {k}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ConfigError(f"labels must be class ids in [0, {k}), got values in [{y.min()}, {y.max()}]")

    rng = np.random.default_rng(seed)
    y_noisy = y.copy()
    n = len(y)
    if kind == "symmetric":
        idx = rng.choice(n, size=int(round(rate * n)), replace=False)
        offs = rng.integers(1, k, size=len(idx))
        y_noisy[idx] = (y[idx] + offs) % k  # an offset in 1..K-1 never lands on the true class
    elif kind == "asymmetric":
        mapping = _checked_map(class_map, k)
        for c in range(k):
            if c not in mapping:
                continue
            members = np.flatnonzero(y == c)
            count = int(round(rate * len(members)))
            idx = rng.choice(members, size=count, replace=False)
            y_noisy[idx] = mapping[c]
    else:
        raise ConfigError(f"noise kind must be 'symmetric' or 'asymmetric', got {kind!r}")
    return NoisyLabels(labels=y_noisy, is_corrupted=y_noisy != y)


def _checked_map(class_map: Mapping[int, int] | None, k: int) -> dict[int, int]:
    if class_map is None:
        raise ConfigError("asymmetric label noise needs a class_map (class -> class it is flipped to)")
    mapping = {int(src): int(dst) for src, dst in class_map.items()}
    for src, dst in mapping.items():
        if not (0 <= src < k and 0 <= dst < k):
            raise ConfigError(f"class_map entry {src} -> {dst} is outside the classes 0..{k - 1}")
        if src == dst:
            raise ConfigError(f"class_map entry {src} -> {dst} maps a class to itself")
    return mapping
