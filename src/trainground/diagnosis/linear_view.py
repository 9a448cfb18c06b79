"""A linear model's out-of-sample view of small image data, averaged into the early-learning view.

Principle: a CNN trained from scratch on a few hundred images is a high-variance estimator
of class probabilities (its early-learning average also carries some memorisation of the
wrong labels it trains on), while multinomial logistic regression on the pixels is a
low-variance one whose K-fold probabilities are genuinely out-of-sample. Confident
learning ranks samples better from an ensemble of diverse out-of-sample views than from
either alone (Northcutt et al., "Confident Learning", JAIR 2021, recommend ensembling the
``pred_probs`` of several models); the two are averaged with equal weight, as the
neighbours' vote is in ``label_probs`` (no weight is fitted to any data set). On larger
folders the CNN has enough data and K linear fits cost more, so the view is used only up to
``MAX_SAMPLES`` images.

Measured on benchmark G (``benchmarks/image_folder.py``): the equal average of the two
views finds more misfiled digits than either view alone on folders of 400 and 800 images.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from trainground.data import IndexedDataset

# Small data, where a CNN from scratch is weakest and 5 linear fits cost seconds: a folder
# of a few thousand images (5 fits of 2000 x 1024 pixels take a few seconds on one core).
MAX_SAMPLES = 2000
# Folds of the cross-fit: the usual 5 (each model sees 80 % of the data, every sample is
# predicted by a model that did not see it).
FOLDS = 5
# L2 strength of the logistic regression: scikit-learn's default, not tuned.
C = 1.0


def applies(data: IndexedDataset) -> bool:
    """Whether the linear view is used: an image folder held in memory with at most ``MAX_SAMPLES`` images
    and every class with at least ``FOLDS`` images (so each fold holds every class)."""
    if data.kind != "image" or not isinstance(data.features, torch.Tensor) or len(data) > MAX_SAMPLES:
        return False
    counts = np.bincount(data.labels.numpy(), minlength=data.num_classes)
    return bool(counts[counts > 0].min() >= FOLDS)


def linear_probs(data: IndexedDataset, *, seed: int = 0) -> np.ndarray:
    """``[N, K]`` out-of-sample class probabilities of every sample from a ``FOLDS``-fold
    logistic regression on the pixels as loaded (all in [0, 1],
    one scale: no standardisation) (classes absent from a fold get 0)."""
    x = data.features.reshape(len(data), -1).numpy().astype(np.float64)
    y = data.labels.numpy()
    out = np.zeros((len(y), data.num_classes))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    with threadpool_limits(limits=torch.get_num_threads()):
        for fit_rows, held_rows in folds.split(x, y):
            model = LogisticRegression(C=C, max_iter=1000).fit(x[fit_rows], y[fit_rows])
            out[np.ix_(held_rows, model.classes_)] = model.predict_proba(x[held_rows])
    return out


def combine(early_probs: np.ndarray, linear: np.ndarray | None) -> np.ndarray:
    """The equal-weight average of the two views (``early_probs`` alone without a linear view)."""
    if linear is None:
        return early_probs
    return (0.5 * early_probs + 0.5 * linear).astype(early_probs.dtype, copy=False)
