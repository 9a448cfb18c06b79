"""Label noise: counts, targets, masks, seeding, and bit-for-bit agreement with the protocol."""

from __future__ import annotations

import numpy as np
import pytest

from trainground.data.noise import DIGIT_CONFUSION_MAP, inject_label_noise
from trainground.errors import ConfigError

K = 10


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, K, size=1000)


def reference(y: np.ndarray, kind: str, rate: float, seed: int, class_map=None) -> np.ndarray:
    """The benchmark protocol, copied verbatim."""
    rng = np.random.default_rng(seed)
    y_noisy = y.copy()
    n = len(y)
    if kind == "symmetric":
        idx = rng.choice(n, size=int(round(rate * n)), replace=False)
        offs = rng.integers(1, K, size=len(idx))
        y_noisy[idx] = (y[idx] + offs) % K
    else:
        for c in range(K):
            members = np.flatnonzero(y == c)
            k = int(round(rate * len(members)))
            idx = rng.choice(members, size=k, replace=False)
            y_noisy[idx] = class_map[c]
    return y_noisy


@pytest.mark.parametrize("seed", [0, 1, 17])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.35, 0.8])
def test_matches_reference_protocol(labels: np.ndarray, seed: int, rate: float) -> None:
    sym = inject_label_noise(labels, kind="symmetric", rate=rate, seed=seed, num_classes=K)
    np.testing.assert_array_equal(sym.labels, reference(labels, "symmetric", rate, seed))
    asym = inject_label_noise(
        labels, kind="asymmetric", rate=rate, seed=seed, class_map=DIGIT_CONFUSION_MAP
    )
    expected = reference(labels, "asymmetric", rate, seed, DIGIT_CONFUSION_MAP)
    np.testing.assert_array_equal(asym.labels, expected)


def test_symmetric_count_never_true_class_and_mask(labels: np.ndarray) -> None:
    noisy, corrupted = inject_label_noise(labels, kind="symmetric", rate=0.3, seed=5)
    assert corrupted.dtype == bool and corrupted.sum() == round(0.3 * len(labels))
    np.testing.assert_array_equal(corrupted, noisy != labels)
    assert ((noisy >= 0) & (noisy < K)).all()
    assert labels.tolist() == np.random.default_rng(0).integers(0, K, size=1000).tolist()  # input untouched


def test_asymmetric_counts_and_targets_follow_map(labels: np.ndarray) -> None:
    noisy, corrupted = inject_label_noise(
        labels, kind="asymmetric", rate=0.25, seed=3, class_map=DIGIT_CONFUSION_MAP
    )
    np.testing.assert_array_equal(corrupted, noisy != labels)
    for c in range(K):
        members = labels == c
        assert corrupted[members].sum() == round(0.25 * members.sum())
        assert (noisy[members & corrupted] == DIGIT_CONFUSION_MAP[c]).all()


def test_asymmetric_skips_unmapped_classes(labels: np.ndarray) -> None:
    noisy, corrupted = inject_label_noise(labels, kind="asymmetric", rate=0.5, seed=3, class_map={1: 7})
    assert set(labels[corrupted].tolist()) == {1} and set(noisy[corrupted].tolist()) == {7}
    # unmapped classes draw nothing: the draws for class 1 are the first ones
    rng = np.random.default_rng(3)
    members = np.flatnonzero(labels == 1)
    expected = rng.choice(members, size=int(round(0.5 * len(members))), replace=False)
    assert sorted(np.flatnonzero(corrupted).tolist()) == sorted(expected.tolist())


def test_same_seed_same_result_other_seed_differs(labels: np.ndarray) -> None:
    first = inject_label_noise(labels, kind="symmetric", rate=0.2, seed=11)
    again = inject_label_noise(labels, kind="symmetric", rate=0.2, seed=11)
    other = inject_label_noise(labels, kind="symmetric", rate=0.2, seed=12)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.labels, other.labels)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "symmetric", "rate": 1.0}, "rate"),
        ({"kind": "symmetric", "rate": -0.1}, "rate"),
        ({"kind": "asymmetric", "rate": 0.1}, "class_map"),
        ({"kind": "asymmetric", "rate": 0.1, "class_map": {2: 2}}, "itself"),
        ({"kind": "asymmetric", "rate": 0.1, "class_map": {2: 10}}, "outside"),
        ({"kind": "symmetric", "rate": 0.1, "num_classes": 1}, "at least 2"),
        ({"kind": "symmetric", "rate": 0.1, "num_classes": 5}, "class ids"),
        ({"kind": "uniform", "rate": 0.1}, "kind"),
    ],
)
def test_invalid_options(labels: np.ndarray, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        inject_label_noise(labels, seed=0, **options)
