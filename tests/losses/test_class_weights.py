import numpy as np
import pytest
import torch

from trainground.errors import ConfigError, DataError
from trainground.losses import class_counts, class_weights, class_weights_from_labels


def test_counts_include_absent_classes():
    assert class_counts(np.array([0, 2, 2]), 4).tolist() == [1, 0, 2, 0]
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        class_counts(np.array([0, 3]), 3)


def test_effective_number_matches_the_paper_formula():
    # Cui et al. 2019, eq. 4 and section 4: alpha_c = (1 - beta) / (1 - beta**n_c), then
    # normalised so that the weights sum to the number of classes.
    counts = np.array([5000, 500, 50, 5])
    for beta in (0.9, 0.99, 0.999, 0.9999):
        raw = np.array([(1 - beta) / (1 - beta**n) for n in counts])
        expected = raw / raw.sum() * len(counts)
        got = class_weights(counts, scheme="effective_number", beta=beta).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_effective_number_limits_are_equal_and_inverse_frequency():
    counts = [100, 10, 1]
    np.testing.assert_allclose(class_weights(counts, scheme="effective_number", beta=0.0), [1, 1, 1])
    near_one = class_weights(counts, scheme="effective_number", beta=1 - 1e-9)
    np.testing.assert_allclose(near_one, class_weights(counts, scheme="inverse"), rtol=1e-4)


def test_inverse_and_inverse_sqrt():
    w = class_weights([100, 25], scheme="inverse")
    assert torch.allclose(w, torch.tensor([0.4, 1.6]))  # 1/100 : 1/25, scaled to sum to 2
    assert w.sum().item() == pytest.approx(2.0)
    assert (w[1] / w[0]).item() == pytest.approx(4.0)
    s = class_weights([100, 25], scheme="inverse_sqrt")
    assert (s[1] / s[0]).item() == pytest.approx(2.0)
    assert s.sum().item() == pytest.approx(2.0)


def test_balanced_counts_give_unit_weights_and_absent_class_is_finite():
    for scheme in ("inverse", "inverse_sqrt", "effective_number"):
        np.testing.assert_allclose(class_weights([7, 7, 7], scheme=scheme), [1, 1, 1], rtol=1e-6)
        w = class_weights([10, 0], scheme=scheme)
        assert torch.isfinite(w).all() and w[1] > w[0]


def test_bad_options_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown class weighting"):
        class_weights([1, 2], scheme="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="beta"):
        class_weights([1, 2], scheme="effective_number", beta=1.0)
    with pytest.raises(ConfigError, match=">= 0"):
        class_weights([1, -2])


def test_from_labels():
    w = class_weights_from_labels(np.array([0, 0, 0, 1]), 2)
    assert (w[1] / w[0]).item() == pytest.approx(3.0)
