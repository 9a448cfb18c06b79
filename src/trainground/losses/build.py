"""The ``loss:`` section of a run config and the factory that turns it into a loss module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from torch import Tensor, nn

from trainground.bounds import FRACTION, NON_NEGATIVE
from trainground.errors import ConfigError
from trainground.losses.class_weights import class_weights_from_labels
from trainground.losses.focal import FocalLoss
from trainground.losses.label_smoothing import check_smoothing
from trainground.losses.weighted_ce import WeightedCrossEntropy

LOSSES = ("ce", "weighted_ce", "focal")


@dataclass
class LossConfig:
    """Which single-task loss ``fit`` trains with. Each field says when to change it."""

    # "ce": plain cross-entropy; "weighted_ce": classes weighted by `weighting`;
    # "focal": focal loss (Lin et al. 2017), per-class alpha from `weighting` if set.
    name: Literal["ce", "weighted_ce", "focal"] = "ce"
    # Class weights from the training labels' counts: "inverse" 1/n, "inverse_sqrt" 1/sqrt(n),
    # "effective_number" (Cui et al. 2019). Required by weighted_ce, optional for focal, not for ce.
    weighting: Literal["inverse", "inverse_sqrt", "effective_number"] | None = None
    # Effective-number hyper-parameter in [0, 1); 0.999 is Cui et al.'s usual choice for small data.
    beta: Annotated[float, FRACTION] = 0.999
    # Focal focusing parameter (focal only); the paper's 2 is a robust default.
    gamma: Annotated[float, NON_NEGATIVE] | None = None
    # Share of the target mass spread uniformly over the classes (ce / weighted_ce); 0.1 is common.
    label_smoothing: Annotated[float, FRACTION] = 0.0

    def validate(self) -> LossConfig:
        """Raise ``ConfigError`` for contradictory or out-of-range options; return self."""
        if self.name not in LOSSES:
            raise ConfigError(f"loss.name: unknown loss {self.name!r}; known: {', '.join(LOSSES)}")
        if self.name == "weighted_ce" and self.weighting is None:
            raise ConfigError("loss.weighting is required for weighted_ce (inverse, inverse_sqrt or effective_number)")
        if self.name == "ce" and self.weighting is not None:
            raise ConfigError("loss.weighting needs name: weighted_ce or focal; plain ce has no class weights")
        if self.gamma is not None and self.name != "focal":
            raise ConfigError(f"loss.gamma is a focal-loss option, but loss.name is {self.name!r}")
        if self.gamma is not None and self.gamma < 0:
            raise ConfigError(f"loss.gamma must be >= 0, got {self.gamma}")
        if self.name == "focal" and self.label_smoothing:
            raise ConfigError("loss.label_smoothing is not supported with focal; use ce or weighted_ce")
        if not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"loss.beta must be in [0, 1), got {self.beta}")
        check_smoothing(self.label_smoothing)
        return self


def build_loss(
    config: LossConfig, train_labels: Tensor | np.ndarray | None = None, *, num_classes: int | None = None
) -> nn.Module:
    """The loss module ``config`` describes, with class weights counted on ``train_labels``.

    Args:
        config: the ``loss:`` section.
        train_labels: ``[N]`` class ids of the training split (never validation or test), needed
            when ``config.weighting`` is set.
        num_classes: number of classes (default: the largest label + 1).
    """
    config.validate()
    weight = None
    if config.weighting is not None:
        if train_labels is None:
            raise ConfigError(f"loss.weighting {config.weighting!r} needs the training labels to count classes")
        labels = np.asarray(train_labels)
        classes = num_classes if num_classes is not None else int(labels.max()) + 1
        weight = class_weights_from_labels(labels, classes, scheme=config.weighting, beta=config.beta)
    if config.name == "ce":
        # PyTorch's own module: default runs stay bit-identical to runs without a loss section.
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if config.name == "focal":
        return FocalLoss(2.0 if config.gamma is None else config.gamma, alpha=weight)
    return WeightedCrossEntropy(weight, label_smoothing=config.label_smoothing)
