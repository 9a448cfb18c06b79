"""Metrics on tensors: regression (MAE, R^2) and detection (mAP at an IoU threshold)."""

from trainground.metrics.detection import (
    average_precision,
    match_detections,
    mean_average_precision,
    object_recall,
    padded_targets,
)
from trainground.metrics.regression import (
    RegressionMetrics,
    mean_absolute_error,
    r2_score,
)

__all__ = [
    "RegressionMetrics", "average_precision", "match_detections", "mean_absolute_error",
    "mean_average_precision", "object_recall", "padded_targets", "r2_score",
]
