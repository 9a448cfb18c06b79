from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainground.engine import FitConfig, fit
from trainground.engine.atomic import atomic_write
from trainground.engine.checkpoint import list_checkpoints
from trainground.errors import RunDirError
from trainground.models import ModelConfig, build_model

SCRIPT = Path(__file__).with_name("train_digits_script.py")


def _model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(32,)), input_shape=(64,), num_classes=10)


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def broken(fh):
        fh.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary file left behind


def test_old_checkpoints_are_pruned(digits, tmp_path):
    data = digits.subset(torch.arange(200))
    fit(_model(), data, config=FitConfig(epochs=3, batch_size=50, checkpoint_every=1, keep_checkpoints=2,
                                         device="cpu"), run_dir=tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-000000011.pt", "step-000000012.pt"]


def test_resume_after_a_crash_mid_epoch_matches_an_uninterrupted_run(digits, tmp_path, crash_at):
    cfg = FitConfig(epochs=3, batch_size=64, checkpoint_every=4, log_every=5, device="cpu")
    fit(_model(), digits, config=cfg, run_dir=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), digits, config=cfg, run_dir=tmp_path / "b", callbacks=[crash_at(38)])
    fit(_model(), digits, config=cfg, run_dir=tmp_path / "b", resume=True)
    assert _same_weights(tmp_path / "a" / "model.safetensors", tmp_path / "b" / "model.safetensors")
    # metrics written after the last checkpoint were cut, then rewritten once
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_resume_refuses_changed_settings_or_data(digits, tmp_path):
    fit(_model(), digits, config=FitConfig(epochs=1, device="cpu"), run_dir=tmp_path)
    with pytest.raises(RunDirError, match="batch_size=64"):
        fit(_model(), digits, config=FitConfig(epochs=2, batch_size=32, device="cpu"), run_dir=tmp_path, resume=True)
    with pytest.raises(RunDirError, match="training data differ"):
        fit(_model(), digits.subset(torch.arange(500)), config=FitConfig(epochs=2, device="cpu"),
            run_dir=tmp_path, resume=True)
    with pytest.raises(RunDirError, match="already holds a training run"):
        fit(_model(), digits, config=FitConfig(epochs=1, device="cpu"), run_dir=tmp_path)
    with pytest.raises(RunDirError, match="no checkpoint"):
        fit(_model(), digits, config=FitConfig(epochs=2, device="cpu"), run_dir=tmp_path / "empty", resume=True)


def _run_script(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, **popen)


@pytest.mark.slow
def test_resume_after_kill_9_gives_bit_identical_weights(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert _run_script(str(reference)).wait(timeout=120) == 0

    proc = _run_script(str(killed), "--slow", "0.02")
    deadline = time.monotonic() + 120
    # Kill once a few checkpoints exist, so the process dies mid-run at an arbitrary point.
    while time.monotonic() < deadline:
        ckpts = list_checkpoints(killed / "checkpoints")
        if ckpts and int(ckpts[-1].stem.split("-")[1]) >= 40:
            break
        assert proc.poll() is None, "training finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists()

    assert _run_script(str(killed), "--resume").wait(timeout=120) == 0
    assert _same_weights(reference / "model.safetensors", killed / "model.safetensors")
    assert (reference / "metrics.jsonl").read_text() == (killed / "metrics.jsonl").read_text()
