from __future__ import annotations

import io

import torch
from rich.console import Console

from trainground.engine import FitConfig, ProgressBar, fit
from trainground.models import ModelConfig, build_model


def test_progress_without_a_terminal_prints_one_line_per_epoch(digits):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(16,)), input_shape=(64,), num_classes=10)
    fit(model, digits.subset(torch.arange(200)), config=FitConfig(epochs=3, device="cpu"),
        callbacks=[ProgressBar(console)])
    lines = buffer.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("val_acc" in line for line in lines)


def test_progress_on_a_terminal_draws_a_bar_to_completion(digits):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    model = build_model(ModelConfig(hidden=(16,)), input_shape=(64,), num_classes=10)
    fit(model, digits.subset(torch.arange(200)), config=FitConfig(epochs=2, batch_size=50, device="cpu"),
        callbacks=[ProgressBar(console)])
    assert "8/8" in buffer.getvalue()  # 2 epochs x 4 steps of 50 (180 train samples -> 4 batches)
