"""Per-class weights from label counts: inverse frequency, inverse square root, effective number."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from trainground.errors import ConfigError, DataError

WeightingScheme = Literal["inverse", "inverse_sqrt", "effective_number"]
WEIGHTING_SCHEMES: tuple[str, ...] = ("inverse", "inverse_sqrt", "effective_number")


def class_counts(labels: Tensor | np.ndarray, num_classes: int) -> Tensor:
    """How many samples each class has (``[num_classes]`` int64, zeros for absent classes).

    Args:
        labels: ``[N]`` class ids in ``[0, num_classes)``.
        num_classes: number of classes, so classes absent from ``labels`` still get a count.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"labels must be class ids in [0, {num_classes}), got values in [{int(y.min())}, {int(y.max())}]")
    return torch.bincount(y, minlength=num_classes)


def class_weights(
    counts: Tensor | np.ndarray | list[int],
    *,
    scheme: WeightingScheme = "inverse",
    beta: float = 0.999,
) -> Tensor:
    """Class weights that grow as a class gets rarer, normalised to sum to the number of classes.

    - ``"inverse"``: ``1 / n_c``;
    - ``"inverse_sqrt"``: ``1 / sqrt(n_c)`` (a milder correction);
    - ``"effective_number"``: ``(1 - beta) / (1 - beta ** n_c)``, the inverse of the
      "effective number of samples" ``(1 - beta ** n) / (1 - beta)`` (Cui et al. 2019):
      ``beta -> 0`` gives equal weights, ``beta -> 1`` gives inverse frequency.

    All three are scaled so that ``weights.sum() == num_classes``, as Cui et al. do, so the
    weights of a balanced dataset are all 1 and the overall loss scale barely changes.
    A class with no sample is weighted as if it had one (a finite, largest weight), so a
    class absent from the training split cannot produce an infinite loss.

    Args:
        counts: ``[C]`` number of training samples per class.
        scheme: how counts become weights (see above).
        beta: hyper-parameter of ``"effective_number"`` in ``[0, 1)``; Cui et al. use 0.9-0.9999.

    Returns:
        ``[C]`` float32 weights, mean 1.

    References:
        Cui, Jia, Lin, Song, Belongie. "Class-Balanced Loss Based on Effective Number of
        Samples." CVPR 2019. https://arxiv.org/abs/1901.05555
    """
    n = torch.as_tensor(np.asarray(counts), dtype=torch.float64).reshape(-1)
    if n.numel() == 0:
        raise ConfigError("class_weights needs the count of at least one class")
    if bool((n < 0).any()):
        raise ConfigError(f"class counts must be >= 0, got {n.tolist()}")
    n = n.clamp_min(1.0)
    if scheme == "inverse":
        raw = 1.0 / n
    elif scheme == "inverse_sqrt":
        raw = n.rsqrt()
    elif scheme == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"beta must be in [0, 1) for effective-number weights, got {beta}")
        # 1 - beta**n loses precision for beta near 1; -expm1(n * log(beta)) does not.
        raw = (1.0 - beta) / -torch.expm1(n * np.log(beta)) if beta > 0 else torch.ones_like(n)
    else:
        raise ConfigError(f"unknown class weighting {scheme!r}; known: {', '.join(WEIGHTING_SCHEMES)}")
    return (raw * (len(n) / raw.sum())).float()


def class_weights_from_labels(
    labels: Tensor | np.ndarray, num_classes: int, *, scheme: WeightingScheme = "inverse", beta: float = 0.999
) -> Tensor:
    """``class_weights(class_counts(labels, num_classes), scheme=scheme, beta=beta)``."""
    return class_weights(class_counts(labels, num_classes), scheme=scheme, beta=beta)
