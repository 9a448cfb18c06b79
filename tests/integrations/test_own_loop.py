"""The diagnosis inside an ordinary PyTorch loop (``Watch``), and the example the README shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainground.data import WithIndex
from trainground.integrations import SessionConfig, Watch

ROOT = Path(__file__).resolve().parents[2]


def _noisy_digits(digits, rate=0.2, seed=0):
    x, y = digits.features / 16.0, digits.labels.numpy().copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < rate
    y[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    return x, torch.tensor(y), flip


def _train(watch, model, epochs, *, val=True):
    loader = DataLoader(watch.train_data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(epochs):
        model.train()
        for index, xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            watch.backward(loss, index=index, logits=logits, labels=yb)
            watch.step()
        if val and watch.val_data is not None:
            model.eval()
            with torch.no_grad():
                for index, xb, yb in DataLoader(watch.val_data, batch_size=256):
                    watch.record_val(index, model(xb), yb)
        if watch.end_epoch():
            break
    return watch.finish()


def test_watch_finds_flipped_labels_and_writes_the_run(digits, tmp_path):
    x, y, flip = _noisy_digits(digits)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    watch = Watch(model, optimizer, TensorDataset(x[:1500], y[:1500]), TensorDataset(x[1500:], y[1500:]),
                  run_dir=tmp_path / "run")
    result = _train(watch, model, 12)
    for name in ("sample_issues.csv", "findings.json", "report.html", "samples.parquet", "metrics.jsonl"):
        assert (tmp_path / "run" / name).exists(), name
    table = pd.read_csv(tmp_path / "run" / "sample_issues.csv")
    assert sorted(table["index"]) == list(range(len(x)))  # training and validation rows, each once
    flagged = table["index"][table["is_label_issue"]].to_numpy()
    hits = np.isin(flagged, np.flatnonzero(flip)).sum()
    # A one-run diagnosis of 20 % symmetric noise on digits: most flags are real, most flips found.
    assert hits / len(flagged) > 0.8 and hits / flip.sum() > 0.6, (len(flagged), hits, flip.sum())
    assert {"is_outlier_issue", "is_near_duplicate_issue", "is_ambiguous_issue"} <= set(table.columns)
    findings = json.loads((tmp_path / "run" / "findings.json").read_text())["findings"]
    assert any(f["check"] == "label_issues" for f in findings)
    assert result.early_learning_epoch is not None


def test_watch_guard_steps_and_the_monitors_see_the_training_forward(digits):
    x, y, _ = _noisy_digits(digits, rate=0.0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, optimizer, TensorDataset(x[:300], y[:300]), config=SessionConfig(patience=None))
    result = _train(watch, model, 2, val=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert watch.session.state.step == 2 * 5 and watch.guard.steps == 10
    assert watch.session.diagnosis is not None and not watch.session.diagnosis.evidence().layers.empty
    assert len(result.table) == 300


def test_with_index_offsets_and_refuses_other_items():
    data = TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    index, _, label = WithIndex(data, offset=10)[2]
    assert int(index) == 12 and int(label) == 0
    assert WithIndex([{"a": 1}])[0] == {"a": 1, "sample_index": 0}
    with pytest.raises(TypeError, match="expects items"):
        WithIndex([(1, 2, 3)])[0]


def test_finish_without_an_epoch_says_what_is_missing():
    model = nn.Sequential(nn.Linear(4, 3))
    watch = Watch(model, torch.optim.SGD(model.parameters(), lr=0.1), TensorDataset(torch.zeros(5, 4),
                                                                                   torch.zeros(5, dtype=torch.long)))
    with pytest.raises(RuntimeError, match="end_epoch"):
        watch.finish()


@pytest.mark.slow
def test_plain_loop_example_runs_and_is_the_readme_text(tmp_path):
    example = (ROOT / "examples" / "plain_loop.py").read_text()
    assert example.strip() in (ROOT / "README.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "plain_loop.py"), str(tmp_path / "run"), "6"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "label issues flagged" in out.stdout
    assert (tmp_path / "run" / "report.html").exists()
