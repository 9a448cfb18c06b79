"""The learning-rate range test: sweep shape, divergence stop, the min/10 suggestion, the run folder."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from torch import nn
from typer.testing import CliRunner

from trainground.cli import app
from trainground.engine import FitConfig, RunConfig
from trainground.engine.lr_find import LRFindConfig, lr_range_test
from trainground.engine.manifest import read_manifest


def _blobs(n: int = 256) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=g) + 2.0 * y[:, None]
    return torch.utils.data.TensorDataset(x, y)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))


def test_sweep_is_exponential_stops_at_divergence_and_suggests_a_tenth_of_the_minimum():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    result = lr_range_test(model, _blobs(), fit_config=FitConfig(batch_size=32), config=LRFindConfig())
    lrs = np.asarray(result.lrs)
    assert lrs[0] == 1e-7
    ratios = lrs[1:] / lrs[:-1]
    assert np.allclose(ratios, (10 / 1e-7) ** (1 / 99))  # one constant factor per step
    # Adam at lr 10 diverges on this problem: the sweep stops early, not at the end.
    assert result.stopped in ("diverged", "non-finite") and len(lrs) < 100
    smooth = np.asarray(result.smoothed, dtype=float)
    assert result.min_lr == lrs[int(np.nanargmin(smooth))]
    assert math.isclose(result.suggestion, result.min_lr / 10)
    assert result.steepest_lr is not None and result.steepest_lr <= result.min_lr
    # The loss at the suggested lr region fell below its start (the sweep saw learning).
    assert np.nanmin(smooth) < smooth[0]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())


def test_sweep_runs_to_the_end_when_nothing_diverges():
    result = lr_range_test(_model(), _blobs(), config=LRFindConfig(start=1e-6, end=1e-4, steps=20))
    assert result.stopped == "end" and len(result.lrs) == 20
    assert math.isclose(result.lrs[-1], 1e-4, rel_tol=1e-9)


def test_lr_find_cli_writes_a_folder_whose_config_fit_accepts(tmp_path):
    out = tmp_path / "lrf"
    res = CliRunner().invoke(app, ["lr-find", "builtin:digits", "--out", str(out), "--steps", "30"])
    assert res.exit_code == 0, res.output
    assert "suggested lr" in res.output
    record = json.loads((out / "lr_find.json").read_text())
    import yaml

    config = RunConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    assert math.isclose(config.fit.lr, record["suggestion"])
    listed = read_manifest(out)["entries"]
    assert {"config.yaml", "lr_find.json", "report.html"} <= set(listed)
    html = (out / "report.html").read_text()
    assert "Learning-rate range test" in html and "findings.json is missing" not in html


def test_lr_findings_point_to_lr_find():
    from trainground.diagnosis.checks import lr_too_high, lr_too_low

    for module in (lr_too_low, lr_too_high):
        assert "trainground lr-find" in open(module.__file__).read()
