"""Generative metrics, usable alone (NumPy arrays or tensors in, floats out).

- :func:`precision_recall` (improved precision/recall, Kynkaanniemi et al. 2019) and its F1,
- :func:`frechet_distance` on the same features (FID on a chosen extractor),
- :func:`ssim` (pairs) and :func:`mean_pairwise_ssim` (within a set: a diversity measure),
- :func:`mode_coverage` (classes found among generated samples, KL from uniform),
- :class:`GenerativeEvaluator`: all of them through a :class:`ReferenceClassifier` trained on the
  real data.

A pure building block: it imports nothing of trainground's other layers.
"""

from trainground.metrics.coverage import ModeCoverage, mode_coverage
from trainground.metrics.frechet import frechet_distance, frechet_distance_gaussians
from trainground.metrics.precision_recall import PrecisionRecall, knn_radii, precision_recall
from trainground.metrics.reference import GenerativeEvaluator, ReferenceClassifier, train_reference_classifier
from trainground.metrics.ssim import mean_pairwise_ssim, ssim

__all__ = [
    "GenerativeEvaluator", "ModeCoverage", "PrecisionRecall", "ReferenceClassifier", "frechet_distance",
    "frechet_distance_gaussians", "knn_radii", "mean_pairwise_ssim", "mode_coverage", "precision_recall", "ssim",
    "train_reference_classifier",
]
