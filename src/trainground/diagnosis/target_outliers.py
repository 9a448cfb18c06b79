"""Label checks for regression targets and object boxes: far from what the model learnt early.

The label-issue logic of classification (a sample whose given label disagrees with what
the model predicted during the early-learning window) carried to the other task types:

- **regression**: residual ``r_i = y_i - y_hat_i`` of the early-learning prediction,
  scaled by the residuals' robust spread (median absolute deviation); a target is an issue
  when ``|r_i - median(r)| / (1.4826 * MAD) > 3.5``.
- **detection**: each labelled object's own early-learning loss (the model's ``-log p``
  of the object's class at its cell plus ``1 - GIoU`` of that cell's box, see
  ``losses.detection.DetectionLoss.per_object``), flagged one-sided with the same robust
  z-score (only a loss far *above* the typical one is suspicious).

- **detection classes**: an object whose cell shows another class more than the given one
  during the window (:func:`object_class_issues`), the classification check per object; a
  box given the wrong class keeps a moderate loss and escapes the loss check.

``diagnosis.box_match`` is the stronger check for boxes (the detector's class probabilities at
each labelled box against confident learning's per-class and background bars; see
benchmarks/README.md): at the fusion recipe's defaults it finds about half of the wrong boxes,
where the loss check above finds 3 %.

Which checks apply to which task type: confident learning, the neighbour and ambiguity
checks need class probabilities and stay class-task only; these two replace the label
check for regression and detection targets. Near duplicates, outliers in the feature
space and distribution shift read the inputs, not the targets, and apply to every task.

Why 3.5: Iglewicz and Hoaglin's cut-off for the modified z-score, chosen a priori so that
about 1 in 2000 samples of a Gaussian residual would be flagged; it is not tuned on the
benchmark. The MAD scale makes the cut-off insensitive to the outliers it looks for.

References:
    Iglewicz, Hoaglin. "How to Detect and Handle Outliers." ASQC Quality Press, 1993.
    Liu, Niles-Weed, Razavian, Fernandez-Granda. "Early-Learning Regularization Prevents
    Memorization of Noisy Labels." NeurIPS 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Modified z-score cut-off (Iglewicz & Hoaglin 1993).
Z_THRESHOLD = 3.5
_MAD_TO_STD = 1.4826  # MAD of a Gaussian times this is its standard deviation


def robust_z(values: Tensor) -> Tensor:
    """``(v - median) / (1.4826 * MAD)`` over the finite entries (NaN stays NaN)."""
    finite = values[torch.isfinite(values)].double()
    if finite.numel() == 0:
        return torch.full_like(values, float("nan"), dtype=torch.float64)
    median = finite.median()
    mad = (finite - median).abs().median()
    scale = (_MAD_TO_STD * mad).clamp_min(torch.finfo(torch.float64).eps * max(1.0, float(median.abs())))
    return (values.double() - median) / scale


@dataclass(frozen=True)
class TargetIssues:
    """Per-item result of a target check (the shape of the sample checks' tables).

    Attributes:
        score: ``[N]`` in [0, 1], low = suspicious: ``exp(-z^2 / 8)`` of the robust z
            (0.5 near ``|z| = 2.35``); NaN where there is no item (padding).
        is_issue: ``[N]`` bool, ``z`` beyond :data:`Z_THRESHOLD`.
        z: ``[N]`` the robust z-score itself (the class margin for :func:`object_class_issues`).
    """

    score: Tensor
    is_issue: Tensor
    z: Tensor


def regression_target_issues(targets: Tensor, early_predictions: Tensor, *, threshold: float = Z_THRESHOLD) -> TargetIssues:
    """Regression targets far from the early-learning prediction (two-sided).

    Args:
        targets: ``[N]`` given targets.
        early_predictions: ``[N]`` the model's mean prediction over the early-learning window.
        threshold: the robust z cut-off.
    """
    if targets.shape != early_predictions.shape:
        raise ValueError(f"targets {tuple(targets.shape)} and predictions {tuple(early_predictions.shape)} differ")
    z = robust_z(targets.double() - early_predictions.double())
    return TargetIssues(torch.exp(-(z**2) / 8).float(), z.abs() > threshold, z.float())


def object_label_issues(early_object_losses: Tensor, *, threshold: float = Z_THRESHOLD) -> TargetIssues:
    """Labelled objects whose early-learning loss is far above the typical one (one-sided).

    Args:
        early_object_losses: ``[N, M]`` per-object losses averaged over the early-learning
            window, NaN for padding rows.
        threshold: the robust z cut-off.
    """
    z = robust_z(early_object_losses)
    score = torch.exp(-(z.clamp_min(0) ** 2) / 8).float()
    return TargetIssues(score, torch.nan_to_num(z, nan=0.0) > threshold, z.float())


def object_class_issues(early_class_margins: Tensor) -> TargetIssues:
    """Labelled objects whose cell, over the early-learning window, shows another class more
    than the given one (mean ``p(given) - max p(other)`` below 0): the classification label
    check (predicted class != given class) carried to each object of a detection target.

    Args:
        early_class_margins: ``[N, M]`` per-object margins averaged over the window
            (``losses.detection.DetectionLoss.class_margin``), NaN for padding.
    """
    margin = early_class_margins.float()
    score = ((margin + 1) / 2).clamp(0, 1)  # margin in [-1, 1] -> [0, 1], low = suspicious
    return TargetIssues(score, torch.nan_to_num(margin, nan=1.0) < 0, margin)
