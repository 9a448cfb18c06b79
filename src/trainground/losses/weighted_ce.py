"""Class-weighted cross-entropy (with optional label smoothing and per-sample weights)."""

from __future__ import annotations

import torch
from torch import Tensor

from trainground.errors import ConfigError
from trainground.losses.label_smoothing import check_smoothing, smoothed_cross_entropy
from trainground.losses.sample_weights import (
    Reduction,
    SampleWeightedLoss,
    SampleWeights,
    weighted_mean,
)


def sample_class_weights(target: Tensor, class_weight: Tensor | None, sample_weight: Tensor | None) -> Tensor | None:
    """Each sample's total weight: its class's weight times its own weight (None when both are None)."""
    weight = None if class_weight is None else class_weight.to(target.device)[target]
    if sample_weight is not None:
        weight = sample_weight if weight is None else weight * sample_weight
    return weight


def weighted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    class_weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    sample_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy where a sample of class ``c`` counts ``class_weight[c] * sample_weight[i]`` times.

    The mean divides by the sum of those weights, the convention of
    ``F.cross_entropy(weight=...)``: with unit weights it *is* ``F.cross_entropy``, and with
    class weights and no smoothing it equals ``F.cross_entropy(weight=class_weight)``.
    With smoothing, each sample is weighted by the weight of its *given* class (PyTorch
    instead weights each smoothing term by the class it points to); that keeps "a sample
    counts w times" true for every option.

    Args:
        logits: ``[N, C]`` unnormalised scores.
        target: ``[N]`` class ids.
        class_weight: ``[C]`` weights, e.g. from :func:`class_weights`; None for all ones.
        label_smoothing: ``eps`` in ``[0, 1)`` (see :func:`smoothed_cross_entropy`).
        sample_weight: ``[N]`` per-sample weights (e.g. event weights); None for all ones.
        reduction: ``"mean"`` (weighted mean), ``"sum"`` or ``"none"``.
    """
    per_sample = smoothed_cross_entropy(logits, target, label_smoothing)
    return weighted_mean(per_sample, sample_class_weights(target, class_weight, sample_weight), reduction)


class WeightedCrossEntropy(SampleWeightedLoss):
    """Module form of :func:`weighted_cross_entropy`; ``fit`` passes the batch's index to
    ``indexed_loss`` so ``sample_weights`` (event weights keyed by input index) apply.

    Args:
        class_weight: ``[C]`` weights, or None.
        label_smoothing: ``eps`` in ``[0, 1)``.
        sample_weights: per-sample weights looked up by input index, or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(
        self,
        class_weight: Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
        sample_weights: SampleWeights | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(sample_weights)
        if class_weight is not None:
            class_weight = torch.as_tensor(class_weight, dtype=torch.float32)
            if class_weight.ndim != 1 or not bool(torch.isfinite(class_weight).all()) or bool((class_weight < 0).any()):
                raise ConfigError("class_weight must be a 1-d tensor of finite weights >= 0")
        # A buffer follows model.to(device) when the loss is registered under the model.
        self.register_buffer("class_weight", class_weight)
        self.label_smoothing = check_smoothing(label_smoothing)
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        return weighted_cross_entropy(
            logits, target, class_weight=self.class_weight, label_smoothing=self.label_smoothing,
            sample_weight=sample_weight, reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, weighted={self.class_weight is not None}"
