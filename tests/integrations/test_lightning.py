"""The Lightning callback: records, findings and report from a Trainer run; chain skips; resume."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("pytorch_lightning")

from trainground.data import WithIndex  # noqa: E402
from trainground.errors import ConfigError  # noqa: E402
from trainground.integrations import SessionConfig  # noqa: E402
from trainground.integrations.lightning import TraingroundCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
warnings.filterwarnings("ignore", ".*does not have many workers.*")


class Net(pl.LightningModule):
    def __init__(self, spike_at: int | None = None, plain: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.spike_at, self.plain = spike_at, plain

    def training_step(self, batch, batch_idx):
        _, x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        if self.spike_at is not None and self.global_step == self.spike_at:
            loss = loss * 1e6  # a poisoned batch: the chain must skip it
        return loss if self.plain else {"loss": loss, "logits": logits}

    def validation_step(self, batch, batch_idx):
        _, x, y = batch
        logits = self.net(x)
        return {"loss": F.cross_entropy(logits, y), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _data(digits, n=400):
    x, y = digits.features[:n] / 16.0, digits.labels[:n]
    return WithIndex(TensorDataset(x[:300], y[:300])), WithIndex(TensorDataset(x[300:], y[300:]), offset=300)


def _trainer(callback, epochs, **kw):
    return pl.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kw)


def _loaders(train, val):
    return DataLoader(train, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(0)), \
        DataLoader(val, batch_size=100)


def test_callback_writes_the_run_and_diagnoses_every_sample(digits, tmp_path):
    train, val = _data(digits)
    torch.manual_seed(0)
    callback = TraingroundCallback(tmp_path / "run")
    _trainer(callback, 3, enable_checkpointing=False).fit(Net(), *_loaders(train, val))
    for name in ("sample_issues.csv", "findings.json", "report.html", "samples.parquet", "layers.parquet"):
        assert (tmp_path / "run" / name).exists(), name
    table = pd.read_csv(tmp_path / "run" / "sample_issues.csv")
    assert sorted(table["index"]) == list(range(400))
    records = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    counts = records[records.split == 0].groupby("epoch")["index"].nunique()
    assert counts.tolist() == [300, 300, 300]  # every training sample once per epoch
    assert callback.result is not None and callback.result.early_learning_epoch is not None


@pytest.mark.parametrize("full_guard", [False, True])
def test_a_spike_is_skipped_exactly(digits, full_guard):
    train, val = _data(digits)
    torch.manual_seed(0)
    model = Net(spike_at=4)
    seen = {}

    class Spy(pl.Callback):
        def on_train_start(self, trainer, module):
            seen["start"] = [p.detach().clone() for p in module.parameters()]

        def on_train_batch_start(self, trainer, module, batch, i):
            if trainer.global_step == 4:
                seen["before"] = [p.detach().clone() for p in module.parameters()]

        def on_train_batch_end(self, trainer, module, outputs, batch, i):
            if "before" in seen and "after" not in seen:
                seen["after"] = [p.detach().clone() for p in module.parameters()]

    callback = TraingroundCallback(config=SessionConfig(training_checks=None), full_guard=full_guard)
    trainer = pl.Trainer(max_epochs=1, callbacks=[callback, Spy()], accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         enable_checkpointing=False)
    trainer.fit(model, *_loaders(train, val))
    assert callback.gradients is not None and callback.gradients.skipped == 1
    assert all(torch.equal(a, b) for a, b in zip(seen["before"], seen["after"], strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(seen["start"], model.parameters(), strict=True))  # it trained


def test_resume_from_a_lightning_checkpoint_continues_the_records(digits, tmp_path):
    train, val = _data(digits)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_epochs=1)
    torch.manual_seed(0)
    trainer = pl.Trainer(max_epochs=2, callbacks=[TraingroundCallback(tmp_path / "run"), ckpt], accelerator="cpu",
                         logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Net(), *_loaders(train, val))
    resumed = TraingroundCallback(tmp_path / "run")
    trainer = pl.Trainer(max_epochs=4, callbacks=[resumed], accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         enable_checkpointing=False)
    trainer.fit(Net(), *_loaders(train, val), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    records = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    counts = records[records.split == 0].groupby("epoch")["index"].count()
    assert counts.tolist() == [300, 300, 300, 300]  # no epoch lost or recorded twice
    assert resumed.session is not None and len(resumed.session.state.history) == 4


def test_a_training_step_without_logits_gets_a_clear_error(digits):
    train, val = _data(digits)
    with pytest.raises(ConfigError, match="logits"):
        _trainer(TraingroundCallback(), 1, enable_checkpointing=False).fit(Net(plain=True), *_loaders(train, val))


@pytest.mark.slow
def test_lightning_example_runs_and_is_the_readme_text(tmp_path):
    example = (ROOT / "examples" / "lightning_loop.py").read_text()
    assert example.strip() in (ROOT / "README.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "lightning_loop.py"), str(tmp_path / "run"), "4"],
                         capture_output=True, text=True, env=env, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "label issues flagged" in out.stdout
    assert np.all([(tmp_path / "run" / n).exists() for n in ("report.html", "findings.json")])


def test_second_pass_option_retrains_a_fresh_network_at_fit_end(digits):
    from trainground.engine import FitConfig
    from trainground.integrations import SecondPass

    train, val = _data(digits)
    fresh = Net().net  # a fresh copy of the network (the module's weights are found under "net.")
    callback = TraingroundCallback(config=SessionConfig(training_checks=None, report=False, patience=2),
                                   second_pass=SecondPass(model=fresh, fit=FitConfig(epochs=3, seed=0, device="cpu")))
    _trainer(callback, 4, enable_checkpointing=False).fit(Net(), *_loaders(train, val))
    assert callback.result is not None
    assert sorted(callback.result.table["index"]) == list(range(400))
    assert callback.result.second_pass_presentations > 0


class ScaledNet(Net):
    """Net under a loss scale that is undone after backward, as Lightning's fp16 AMP does between
    ``on_after_backward`` and ``on_before_optimizer_step`` (callbacks' hooks run before the module's)."""

    SCALE = 1024.0

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        return {**out, "loss": out["loss"] * self.SCALE}

    def on_after_backward(self):
        for p in self.parameters():
            p.grad.div_(self.SCALE)


def test_the_gradient_monitor_reads_the_gradients_the_optimizer_steps_on(digits, tmp_path):
    train, val = _data(digits)
    norms = {}
    for name, net in (("plain", Net), ("scaled", ScaledNet)):
        torch.manual_seed(0)
        callback = TraingroundCallback(tmp_path / name, guard=None)
        _trainer(callback, 1, enable_checkpointing=False).fit(net(), *_loaders(train, val))
        layers = pd.read_parquet(tmp_path / name / "layers.parquet")
        norms[name] = layers[layers.stat == "grad_norm"].sort_values(["step", "layer"])["value"].to_numpy(dtype=float)
    assert norms["plain"].size and np.isfinite(norms["plain"]).any()
    np.testing.assert_allclose(norms["scaled"], norms["plain"], rtol=1e-4)  # not 1024x: read after the unscale
