from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainground.metrics import (
    GenerativeEvaluator,
    frechet_distance,
    mean_pairwise_ssim,
    mode_coverage,
    precision_recall,
    ssim,
)


def _brute_precision(real: np.ndarray, fake: np.ndarray, k: int) -> float:
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    radii = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    return float((d_fr <= radii[None]).any(axis=1).mean())


def test_precision_recall_agree_with_a_brute_force_reference():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(120, 5)), rng.normal(0.7, 1.3, size=(90, 5))
    pr = precision_recall(real, fake, k=3)
    assert pr.precision == pytest.approx(_brute_precision(real, fake, 3))
    assert pr.recall == pytest.approx(_brute_precision(fake, real, 3))
    assert pr.f1 == pytest.approx(2 * pr.precision * pr.recall / (pr.precision + pr.recall))


def test_a_collapsed_generator_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=10, size=(10, 8))
    real = np.concatenate([c + rng.normal(size=(50, 8)) for c in centres])
    healthy = np.concatenate([c + rng.normal(size=(50, 8)) for c in centres])
    collapsed = centres[0] + rng.normal(size=(500, 8))
    good, bad = precision_recall(real, healthy), precision_recall(real, collapsed)
    assert good.precision > 0.8 and good.recall > 0.8
    assert bad.precision > 0.7 and bad.recall < 0.15  # fidelity kept, diversity lost
    assert precision_recall(real, real).to_dict() == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_frechet_distance_matches_the_closed_form_of_gaussians():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(200_000, 1))
    b = rng.normal(3.0, 2.0, size=(200_000, 1))
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2 = 9 + 1
    assert frechet_distance(a, b) == pytest.approx(10.0, rel=0.02)
    x = rng.normal(size=(500, 6))
    assert abs(frechet_distance(x, x)) < 1e-6
    assert frechet_distance(x, x + 1.0) == pytest.approx(6.0, rel=1e-6)  # shift only: |mu1 - mu2|^2


def test_ssim_agrees_with_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.image")
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(6, 1, 16, 16, generator=gen, dtype=torch.float64)
    b = (a + 0.2 * torch.randn(6, 1, 16, 16, generator=gen, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(a, b, data_range=1.0)
    # torchmetrics averages its map over the reflect-padded image; Wang et al.'s reference code and
    # scikit-image average where the 11 x 11 window fits: the same map, cropped by 5 on each side.
    _, full = tm.structural_similarity_index_measure(b, a, data_range=1.0, reduction="none", return_full_image=True)
    assert torch.allclose(ours, full[..., 5:-5, 5:-5].flatten(1).mean(1).double(), atol=1e-6)


def test_ssim_properties_and_pairwise_diversity():
    gen = torch.Generator().manual_seed(4)
    a = torch.rand(5, 16, 16, generator=gen)
    assert torch.allclose(ssim(a, a, data_range=1.0), torch.ones(5, dtype=torch.float64))
    b = torch.rand(5, 16, 16, generator=gen)
    assert torch.allclose(ssim(a, b, data_range=1.0), ssim(b, a, data_range=1.0))
    same = a[:1].repeat(40, 1, 1)
    assert mean_pairwise_ssim(same, data_range=1.0) == pytest.approx(1.0)
    noise = torch.rand(40, 16, 16, generator=gen)
    assert mean_pairwise_ssim(noise, data_range=1.0) < 0.2
    with pytest.raises(ValueError, match="equal shape"):
        ssim(a, b[:, :8], data_range=1.0)


def test_mode_coverage_limits():
    one = mode_coverage(np.zeros(1000, dtype=int), 10)
    assert one.coverage == pytest.approx(0.1) and one.kl_uniform == pytest.approx(math.log(10))
    uniform = mode_coverage(np.arange(1000) % 10, 10)
    assert uniform.coverage == 1.0 and uniform.kl_uniform == pytest.approx(0.0, abs=1e-12)
    # a class reached by 1 sample in 1000 (a classifier's stray error) does not count as covered
    stray = mode_coverage(np.r_[np.zeros(999, dtype=int), 3], 10)
    assert stray.coverage == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lie in"):
        mode_coverage(np.array([0, 10]), 10)


def test_evaluator_on_digits_tells_real_from_collapsed():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.nn.functional.interpolate(torch.tensor(d.images, dtype=torch.float32)[:, None] / 8 - 1,
                                        size=16, mode="bilinear", align_corners=False)
    y = torch.tensor(d.target)
    ev = GenerativeEvaluator.fit(x[:1200], y[:1200])
    assert ev.accuracy(x[1200:], y[1200:]) > 0.85  # the last rows are other writers: harder
    held_out = ev.evaluate(x[1200:])
    collapsed = ev.evaluate(x[1200:1201].repeat(500, 1, 1, 1) + 0.05 * torch.randn(500, 1, 16, 16))
    assert held_out["mode_coverage"] == 1.0 and held_out["recall"] > 0.6 and held_out["precision"] > 0.6
    assert collapsed["mode_coverage"] <= 0.2 and collapsed["recall"] < 0.1
    assert collapsed["ssim_intra"] > held_out["ssim_intra"] + 0.3
    assert collapsed["frechet"] > held_out["frechet"]
    noise = ev.evaluate(torch.rand(300, 1, 16, 16) * 2 - 1)  # no digit at all: far from every real image
    assert held_out["ssim_nearest_real"] > noise["ssim_nearest_real"] + 0.3
