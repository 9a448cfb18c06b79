"""Frechet distance between two Gaussians fitted to feature sets (FID on any feature extractor)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from torch import Tensor

from trainground.metrics._arrays import as_features


def frechet_distance_gaussians(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, the squared 2-Wasserstein distance of two Gaussians."""
    diff = mu1 - mu2
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    if caught or not np.isfinite(covmean).all():
        # A singular product (dead feature units, or fewer samples than dimensions): regularise
        # as the FID reference code does.
        offset = np.eye(cov1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    covmean = np.real(covmean)  # round-off leaves a tiny imaginary part
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


def frechet_distance(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to ``real`` and ``fake`` features (``[N, D]``).

    With Inception-v3 pool features this is the FID; here any extractor (the metrics use a small
    classifier trained on the real data), so values compare only within one extractor.

    References:
        Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter. GANs Trained by a Two Time-Scale Update
        Rule Converge to a Local Nash Equilibrium. NeurIPS 2017.
    """
    r, f = as_features(real, "real").numpy(), as_features(fake, "fake").numpy()
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features differ in width: {r.shape[1]} vs {f.shape[1]}")
    return frechet_distance_gaussians(r.mean(0), np.cov(r, rowvar=False), f.mean(0), np.cov(f, rowvar=False))
