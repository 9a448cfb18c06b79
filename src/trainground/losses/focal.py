"""Focal loss: cross-entropy scaled by ``(1 - p_t) ** gamma``, with optional per-class alpha."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainground.errors import ConfigError
from trainground.losses.sample_weights import (
    Reduction,
    SampleWeightedLoss,
    SampleWeights,
    weighted_mean,
)
from trainground.losses.weighted_ce import sample_class_weights


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    sample_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Multi-class focal loss ``-alpha_t * (1 - p_t) ** gamma * log p_t``.

    Well-classified samples (``p_t`` near 1) are down-weighted, so the rare and hard ones
    dominate the gradient. ``gamma = 0`` and no alpha is exactly cross-entropy. The mean is
    the weighted mean over ``alpha_t * sample_weight`` (as in :func:`weighted_cross_entropy`),
    so ``gamma = 0`` with alpha equals class-weighted cross-entropy; Lin et al. instead
    normalise a detection image's sum by its number of positive anchors, which has no
    counterpart in classification.

    Args:
        logits: ``[N, C]`` unnormalised scores.
        target: ``[N]`` class ids.
        gamma: focusing parameter >= 0 (2 in the paper).
        alpha: ``[C]`` per-class weights (e.g. :func:`class_weights`), or None.
        sample_weight: ``[N]`` per-sample weights, or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    References:
        Lin, Goyal, Girshick, He, Dollar. "Focal Loss for Dense Object Detection." ICCV 2017.
        https://arxiv.org/abs/1708.02002
    """
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.view(-1, 1)).squeeze(1)
    per_sample = -log_p
    if gamma != 0.0:
        # (1 - p)**gamma via -expm1(log p): exact for p near 1, where 1 - exp(log p) cancels.
        # The floor keeps the gradient finite when p rounds to exactly 1 (d/dx x**gamma at 0).
        per_sample = per_sample * (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny).pow(gamma)
    return weighted_mean(per_sample, sample_class_weights(target, alpha, sample_weight), reduction)


class FocalLoss(SampleWeightedLoss):
    """Module form of :func:`focal_loss` (``indexed_loss`` applies ``sample_weights``).

    Args:
        gamma: focusing parameter >= 0.
        alpha: ``[C]`` per-class weights, or None.
        sample_weights: per-sample weights looked up by input index, or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    References:
        Lin et al. 2017 (see :func:`focal_loss`).
    """

    def __init__(
        self,
        gamma: float = 2.0,
        *,
        alpha: Tensor | None = None,
        sample_weights: SampleWeights | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(sample_weights)
        if gamma < 0:
            raise ConfigError(f"focal gamma must be >= 0, got {gamma}")
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float32)
            if alpha.ndim != 1 or not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()):
                raise ConfigError("focal alpha must be a 1-d tensor of finite per-class weights >= 0")
        self.register_buffer("alpha", alpha)
        self.gamma = float(gamma)
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        return focal_loss(
            logits, target, gamma=self.gamma, alpha=self.alpha, sample_weight=sample_weight, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha is not None}"
