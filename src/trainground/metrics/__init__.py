"""Metrics on tensors and arrays, usable alone (a building block: it imports nothing of trainground's
other layers but the bottom one).

Regression and detection (the fusion recipe's tasks):

- :func:`mean_absolute_error`, :func:`r2_score`, :class:`RegressionMetrics` (accumulated),
- :func:`mean_average_precision` at an IoU threshold, :func:`object_recall`.

Generative (the GAN recipe's evaluation):

- :func:`precision_recall` (improved precision/recall, Kynkaanniemi et al. 2019) and its F1,
- :func:`frechet_distance` on the same features (FID on a chosen extractor),
- :func:`ssim` (pairs) and :func:`mean_pairwise_ssim` (within a set: a diversity measure),
- :func:`mode_coverage` (classes found among generated samples, KL from uniform),
- :class:`GenerativeEvaluator`: all of them through a :class:`ReferenceClassifier` trained on the
  real data.
"""

from trainground.metrics.coverage import ModeCoverage, mode_coverage
from trainground.metrics.detection import (
    average_precision,
    match_detections,
    mean_average_precision,
    object_recall,
    padded_targets,
)
from trainground.metrics.frechet import frechet_distance, frechet_distance_gaussians
from trainground.metrics.precision_recall import PrecisionRecall, knn_radii, precision_recall
from trainground.metrics.reference import GenerativeEvaluator, ReferenceClassifier, train_reference_classifier
from trainground.metrics.regression import RegressionMetrics, mean_absolute_error, r2_score
from trainground.metrics.ssim import mean_pairwise_ssim, ssim

__all__ = [
    "GenerativeEvaluator", "ModeCoverage", "PrecisionRecall", "ReferenceClassifier", "RegressionMetrics",
    "average_precision", "frechet_distance", "frechet_distance_gaussians", "knn_radii", "match_detections",
    "mean_absolute_error", "mean_average_precision", "mean_pairwise_ssim", "mode_coverage", "object_recall",
    "padded_targets", "precision_recall", "r2_score", "ssim", "train_reference_classifier",
]
