"""Fixtures of the logger tests: a small model and metrics.jsonl as tag -> [(step, value)]."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import torch

from trainground.engine import read_metrics
from trainground.models import ModelConfig, build_model

STEP_KEYS = ("loss", "lr", "grad_norm", "clip_threshold", "accum_k", "skipped", "update_scale")
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(hidden=(32,)), input_shape=(64,), num_classes=10)


def expected_series(metrics: Path) -> dict[str, list[tuple[int, float]]]:
    """What every logger must hold: metrics.jsonl's step and epoch lines, per tag, by step."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for record in read_metrics(metrics):
        keys = {"step": STEP_KEYS, "epoch": EPOCH_KEYS}.get(record["kind"], ())
        for key in keys:
            if record.get(key) is not None:
                series[f"{record['kind']}/{key}"].append((record["step"], record[key]))
    return dict(series)


@pytest.fixture
def model_factory():
    """``model_factory(seed=0)``: a small MLP for digits, seeded."""
    return small_model


@pytest.fixture
def jsonl_series():
    """``jsonl_series(path)``: metrics.jsonl's step/epoch values as tag -> [(step, value)]."""
    return expected_series


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory):
    """A local MLflow store (sqlite file) shared by the session: creating its tables takes
    seconds. No server, no network; tests tell their runs apart by run id or experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
