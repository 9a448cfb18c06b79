"""The linear view of small image folders: out-of-sample probabilities, used when it applies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis import linear_view
from trainground.diagnosis.dataset import DatasetDiagnosisConfig, diagnose_dataset
from trainground.engine import FitConfig


def _images(n_per_class: int = 20, flip: int | None = None, kind: str = "image") -> IndexedDataset:
    """Three classes of 8x8 grey images, each class bright in its own third of the rows."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.2, (3 * n_per_class, 1, 8, 8)).astype(np.float32)
    y = np.repeat(np.arange(3), n_per_class)
    for i, c in enumerate(y):
        x[i, 0, 3 * c: 3 * c + 2] += 0.7
    if flip is not None:
        y[flip] = (y[flip] + 1) % 3
    return IndexedDataset(features=torch.from_numpy(x), labels=torch.from_numpy(y), index=torch.arange(len(y)),
                          encoder=LabelEncoder(("a", "b", "c")), kind=kind, name="toy")


def test_applies_to_small_in_memory_image_folders_only() -> None:
    assert linear_view.applies(_images())
    assert not linear_view.applies(_images(kind="table"))
    assert not linear_view.applies(_images(n_per_class=linear_view.MAX_SAMPLES // 3 + 1))
    assert not linear_view.applies(_images(n_per_class=linear_view.FOLDS - 1))  # a fold would miss a class


def test_linear_probs_are_out_of_sample() -> None:
    data = _images(flip=5)  # image 5 is of class 0, filed under 1
    probs = linear_view.linear_probs(data, seed=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    # a model that saw image 5 with label 1 would give label 1 some weight; the held-out fold's does not
    assert probs[5].argmax() == 0 and probs[5, 1] < 0.2
    others = np.delete(np.arange(len(probs)), 5)
    assert (probs[others].argmax(1) == data.labels.numpy()[others]).all()


def test_diagnosis_averages_the_linear_view_into_the_early_learning_probs() -> None:
    data = _images(flip=5)
    base = DatasetDiagnosisConfig(fit=FitConfig(epochs=2, batch_size=16, seed=0), second_pass=False,
                                  training_checks=None)
    off = diagnose_dataset(data, replace(base, linear_view=False))
    auto = diagnose_dataset(data, base)  # None: on, a small image folder
    expected = 0.5 * off.pred_probs + 0.5 * linear_view.linear_probs(data, seed=0)
    np.testing.assert_allclose(auto.pred_probs, expected, atol=1e-5)
    table = diagnose_dataset(replace(data, kind="table"), base)  # tables: off
    np.testing.assert_allclose(table.pred_probs, off.pred_probs, atol=1e-6)
