"""Checksums of checkpoints and model files: damage is detected, never resumed or predicted from."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file

from trainground.engine import FitConfig, fit
from trainground.engine.checkpoint import list_checkpoints, load_latest_checkpoint, read_checkpoint
from trainground.engine.model_file import read_model_file, save_model
from trainground.errors import RunDirError
from trainground.models import ModelConfig, build_model


def _model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(16,)), input_shape=(64,), num_classes=10)


CFG = FitConfig(epochs=2, batch_size=50, checkpoint_every=2, keep_checkpoints=3, log_every=2, device="cpu",
                checkpoint_seconds=0.0)


@pytest.fixture
def small(digits):
    return digits.subset(torch.arange(200))


def _flip(path, count=64):
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    for i in range(count):
        raw[middle + i] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(small, tmp_path, crash_at):
    reference = fit(_model(), small, config=CFG, run_dir=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), small, config=CFG, run_dir=tmp_path / "b", callbacks=[crash_at(6)])
    newest = list_checkpoints(tmp_path / "b" / "checkpoints")[-1]
    _flip(newest)
    with pytest.warns(UserWarning, match="checksum mismatch.*resuming from the previous checkpoint"):
        fit(_model(), small, config=CFG, run_dir=tmp_path / "b", resume=True)
    assert newest.with_name(newest.name + ".damaged").exists()
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumed from an older step: the same result
    assert reference.steps == 8


def test_no_intact_checkpoint_is_one_line(small, tmp_path):
    fit(_model(), small, config=CFG, run_dir=tmp_path)
    for path in list_checkpoints(tmp_path / "checkpoints"):
        path.write_bytes(os.urandom(2048))
    with pytest.raises(RunDirError) as err:
        load_latest_checkpoint(tmp_path / "checkpoints")
    message = str(err.value)
    assert message.startswith("no intact checkpoint") and "\n" not in message and "weights_only" not in message


def test_a_checkpoint_without_its_digest_is_an_interrupted_write(small, tmp_path):
    fit(_model(), small, config=CFG, run_dir=tmp_path)
    newest = list_checkpoints(tmp_path / "checkpoints")[-1]
    newest.with_name(newest.name + ".sha256").unlink()
    with pytest.raises(RunDirError, match="interrupted"):
        read_checkpoint(newest)
    with pytest.warns(UserWarning, match="interrupted"):
        payload = load_latest_checkpoint(tmp_path / "checkpoints")
    assert payload["step"] < 8


def test_stale_temporary_files_are_removed_on_resume(small, tmp_path):
    fit(_model(), small, config=CFG, run_dir=tmp_path)
    stale = tmp_path / "checkpoints" / ".step-000000009.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    load_latest_checkpoint(tmp_path / "checkpoints")
    assert not stale.exists()


def test_model_file_checksum_detects_flipped_bytes_and_changed_metadata(tmp_path):
    model = _model()
    save_model(tmp_path / "m.safetensors", model, info={"classes": list(range(10))})
    tensors, meta = read_model_file(tmp_path / "m.safetensors")
    assert meta["classes"] == list(range(10))
    _flip(tmp_path / "m.safetensors", 16)
    with pytest.raises(RunDirError, match="checksum mismatch"):
        read_model_file(tmp_path / "m.safetensors")
