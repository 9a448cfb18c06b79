"""Losses: weighted, focal, label-smoothed, hierarchical and multi-task cross-entropy."""

from trainground.losses.build import LOSSES, EventWeight, HierarchyConfig, LossConfig, build_loss, build_task_loss
from trainground.losses.class_weights import (
    WEIGHTING_SCHEMES,
    class_counts,
    class_weights,
    class_weights_from_labels,
)
from trainground.losses.focal import FocalLoss, focal_loss
from trainground.losses.gce import GeneralizedCrossEntropy, generalized_cross_entropy
from trainground.losses.hierarchical import (
    HierarchicalCrossEntropy,
    coarse_logits,
    hierarchical_accuracy,
    hierarchical_cross_entropy,
    tree_to_index,
)
from trainground.losses.label_smoothing import smooth_labels, smoothed_cross_entropy
from trainground.losses.multitask import MultiTaskLoss
from trainground.losses.sample_weights import (
    SampleWeightedLoss,
    SampleWeights,
    loss_for_batch,
    weighted_mean,
)
from trainground.losses.task_weighting import (
    DynamicWeightAverage,
    StaticWeighting,
    UncertaintyWeighting,
    dwa_weights,
    make_weighting,
)
from trainground.losses.weighted_ce import WeightedCrossEntropy, weighted_cross_entropy

__all__ = [
    "LOSSES",
    "WEIGHTING_SCHEMES",
    "DynamicWeightAverage",
    "FocalLoss",
    "GeneralizedCrossEntropy",
    "HierarchicalCrossEntropy",
    "EventWeight",
    "HierarchyConfig",
    "LossConfig",
    "MultiTaskLoss",
    "SampleWeightedLoss",
    "SampleWeights",
    "StaticWeighting",
    "UncertaintyWeighting",
    "WeightedCrossEntropy",
    "build_loss",
    "build_task_loss",
    "class_counts",
    "class_weights",
    "class_weights_from_labels",
    "coarse_logits",
    "dwa_weights",
    "focal_loss",
    "generalized_cross_entropy",
    "hierarchical_accuracy",
    "hierarchical_cross_entropy",
    "loss_for_batch",
    "make_weighting",
    "smooth_labels",
    "smoothed_cross_entropy",
    "tree_to_index",
    "weighted_cross_entropy",
    "weighted_mean",
]
