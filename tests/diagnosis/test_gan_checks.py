from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from trainground.data.digit_images import digit_images
from trainground.diagnosis.checks._gan import PLAYERS_KEY
from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import Severity
from trainground.diagnosis.registry import get_check
from trainground.engine.generative import GeneratorWatcher
from trainground.metrics import GenerativeEvaluator


class _Collapsed(nn.Module):
    """Whatever the noise: one real digit, barely perturbed."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self.image = nn.Parameter(image.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.image + 0.05 * z[:, :1, None, None]).clamp(-1, 1)


class _RealSampler(nn.Module):
    """A perfect generator: the noise picks one of the real digits (ones the metrics' reference set lacks)."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = nn.Parameter(images.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        index = (z[:, 0].abs() * 1e4).long() % len(self.images)
        return self.images[index]


class _State:
    """The part of TwoPlayerState the watcher reads."""

    def __init__(self, model: nn.Module, epochs: int) -> None:
        self.players = {"generator": type("S", (), {"model": model})()}
        self.config = type("C", (), {"epochs": epochs})()
        self.run_dir, self.epoch, self.epoch_metrics = None, 0, {}


@pytest.fixture(scope="module")
def evaluator():
    x, y = digit_images(16)
    return GenerativeEvaluator.fit(x[::2], y[::2], epochs=8), x


def _epochs_of(model: nn.Module, evaluator: GenerativeEvaluator, epochs: int = 3) -> pd.DataFrame:
    watcher = GeneratorWatcher(evaluator, latent_dim=4, samples=500)
    state, rows = _State(model, epochs), []
    for epoch in range(epochs):
        state.epoch, state.epoch_metrics = epoch, {"discriminator_loss": 1.3, "generator_loss": 0.8}
        watcher.on_epoch_end(state)
        rows.append({"step": 10 * (epoch + 1), "epoch": epoch, **state.epoch_metrics})
    return pd.DataFrame(rows)


def test_a_collapsed_generator_is_flagged_and_a_perfect_one_is_not(evaluator):
    ev, x = evaluator
    check = get_check("gan_mode_collapse").fn
    collapsed = check(Evidence(epochs=_epochs_of(_Collapsed(x[1]), ev)))
    assert [f.severity for f in collapsed.findings] == [Severity.ERROR]  # low coverage and samples alike
    assert collapsed.findings[0].evidence["mode_coverage"] <= 0.2
    healthy = check(Evidence(epochs=_epochs_of(_RealSampler(x[1::2]), ev)))
    assert healthy.findings == []


def test_coverage_falling_from_its_best_is_flagged_even_above_one_half():
    epochs = pd.DataFrame({"step": [10, 20, 30, 40], "epoch": [0, 1, 2, 3],
                           "gen_mode_coverage": [0.6, 1.0, 0.9, 0.6], "gen_ssim_intra": [0.1] * 4,
                           "real_ssim_intra": [0.08] * 4})
    found = get_check("gan_mode_collapse").fn(Evidence(epochs=epochs)).findings
    assert [f.severity for f in found] == [Severity.WARNING] and found[0].step == 40
    rising = epochs.assign(gen_mode_coverage=[0.3, 0.6, 0.9, 1.0])  # a healthy start: coverage grows
    assert get_check("gan_mode_collapse").fn(Evidence(epochs=rising)).findings == []


def test_discriminator_overpowering_needs_a_lasting_win_and_a_growing_generator_loss():
    check = get_check("gan_discriminator_overpowering").fn
    won = pd.DataFrame({"step": range(1, 7), "epoch": range(6), "discriminator_loss": [1.2, 0.6, 0.04, 0.01, 0.003, 0.001],
                        "generator_loss": [0.5, 1.0, 1.5, 1.6, 1.7, 1.75]})
    found = check(Evidence(epochs=won)).findings
    assert [f.severity for f in found] == [Severity.ERROR] and found[0].step == 3
    assert check(Evidence(epochs=won.iloc[:4])).findings[0].severity == Severity.WARNING  # 2 epochs so far
    balanced = won.assign(discriminator_loss=[1.4, 1.3, 1.2, 1.25, 1.3, 1.2])
    assert check(Evidence(epochs=balanced)).findings == []
    settling = won.assign(generator_loss=[2.0, 1.8, 1.5, 1.4, 1.3, 1.2])  # D wins but G is catching up
    assert check(Evidence(epochs=settling)).findings == []


def _steps(loss: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(1, len(loss) + 1), "loss": loss})


def test_players_oscillating_in_anti_phase_are_flagged_and_noisy_balance_is_not():
    rng = np.random.default_rng(0)
    t = np.arange(800)
    wave = 0.6 * np.sign(np.sin(2 * np.pi * t / 40))  # the lead changes hands every 20 steps
    check = get_check("gan_oscillation").fn
    swinging = {"discriminator": _steps(1.2 + wave + 0.1 * rng.normal(size=800)),
                "generator": _steps(0.8 - wave + 0.1 * rng.normal(size=800))}
    found = check(Evidence(extra={PLAYERS_KEY: swinging})).findings
    assert len(found) == 1 and found[0].evidence["correlation"] <= -0.5
    steady = {"discriminator": _steps(1.2 + 0.3 * rng.normal(size=800)),
              "generator": _steps(0.8 + 0.3 * rng.normal(size=800))}
    assert check(Evidence(extra={PLAYERS_KEY: steady})).findings == []
    assert check(Evidence()).findings == []  # not a GAN run: nothing to say
