"""Generalized cross-entropy: a loss bounded in ``[0, 1/q]`` that noisy labels cannot dominate."""

from __future__ import annotations

import torch
from torch import Tensor

from trainground.errors import ConfigError
from trainground.losses.sample_weights import (
    Reduction,
    SampleWeightedLoss,
    SampleWeights,
    weighted_mean,
)
from trainground.losses.weighted_ce import sample_class_weights

# The value the paper recommends and uses for every data set (q -> 0 is cross-entropy,
# q = 1 is the mean absolute error, robust but slow to train).
DEFAULT_Q = 0.7


def generalized_cross_entropy(
    logits: Tensor, target: Tensor, *, q: float = DEFAULT_Q, class_weight: Tensor | None = None,
    sample_weight: Tensor | None = None, reduction: Reduction = "mean",
) -> Tensor:
    """``(1 - p_y^q) / q`` per sample, weighted like :func:`~trainground.losses.weighted_cross_entropy`.

    Its gradient is the cross-entropy's times ``p_y^q``: a sample the model finds
    improbable (often a wrong label) pulls ``p_y^q`` times less than under cross-entropy,
    and its loss is at most ``1 / q`` however wrong the model is on it.

    Args:
        logits: ``[N, C]`` unnormalised scores.
        target: ``[N]`` class ids.
        q: in ``(0, 1]``.
        class_weight: ``[C]`` weights, or None.
        sample_weight: ``[N]`` per-sample weights, or None.
        reduction: ``"mean"`` (weighted mean), ``"sum"`` or ``"none"``.

    References:
        Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural Networks
        with Noisy Labels", NeurIPS 2018.
    """
    if not 0 < q <= 1:
        raise ConfigError(f"generalized cross-entropy needs q in (0, 1], got {q}")
    log_p = torch.log_softmax(logits.float(), dim=1).gather(1, target.long().unsqueeze(1)).squeeze(1)
    per_sample = (1.0 - torch.exp(q * log_p)) / q
    return weighted_mean(per_sample, sample_class_weights(target, class_weight, sample_weight), reduction)


class GeneralizedCrossEntropy(SampleWeightedLoss):
    """Module form of :func:`generalized_cross_entropy` (per-sample weights by input index)."""

    def __init__(self, q: float = DEFAULT_Q, class_weight: Tensor | None = None, *,
                 sample_weights: SampleWeights | None = None, reduction: Reduction = "mean") -> None:
        super().__init__(sample_weights)
        if not 0 < q <= 1:
            raise ConfigError(f"generalized cross-entropy needs q in (0, 1], got {q}")
        self.q = float(q)
        self.register_buffer("class_weight", None if class_weight is None else torch.as_tensor(class_weight,
                                                                                                dtype=torch.float32))
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        return generalized_cross_entropy(logits, target, q=self.q, class_weight=self.class_weight,
                                         sample_weight=sample_weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"q={self.q}, weighted={self.class_weight is not None}"
