from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainground.engine import Callback
from trainground.engine.checkpoint import list_checkpoints
from trainground.engine.metrics import read_metrics
from trainground.engine.two_player import Player, TwoPlayerConfig, fit_two_player
from trainground.errors import ConfigError, RunDirError

SCRIPT = Path(__file__).with_name("train_gan_script.py")
_spec = importlib.util.spec_from_file_location("train_gan_script", SCRIPT)
gan_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gan_script)

NAMES = ("discriminator", "generator")


def _same_weights(a: Path, b: Path) -> bool:
    return all(
        (wa := load_file(a / f"model-{n}.safetensors")).keys() == (wb := load_file(b / f"model-{n}.safetensors")).keys()
        and all(torch.equal(wa[k], wb[k]) for k in wa)
        for n in NAMES
    )


def _same_metrics(a: Path, b: Path) -> bool:
    files = ["metrics.jsonl", *(f"metrics-{n}.jsonl" for n in NAMES), *(f"actions-{n}.jsonl" for n in NAMES)]
    return all((a / f).exists() == (b / f).exists() for f in files) and all(
        (a / f).read_text() == (b / f).read_text() for f in files if (a / f).exists())


class _Crash(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_batch_end(self, state) -> None:
        if state.step == self.at:
            raise KeyboardInterrupt


class _GradLeak(Callback):
    """Counts backward passes of this player that changed the other player's gradients (its own
    accumulation window may hold gradients of its own earlier micro-batches: those must stay as they are)."""

    def __init__(self, other: torch.nn.Module) -> None:
        self.other, self.leaks, self.checked = other, 0, 0

    def _grads(self) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.clone() for p in self.other.parameters()]

    def on_batch_start(self, state) -> None:
        self.before = self._grads()

    def on_after_backward(self, state) -> None:
        after = self._grads()
        self.checked += 1
        self.leaks += any((a is None) != (b is None) or (a is not None and not torch.equal(a, b))
                          for a, b in zip(self.before, after, strict=True))


def test_a_gan_run_writes_both_players_files_and_no_gradient_crosses(tmp_path):
    players, game, data, config, callbacks = gan_script.build()
    leak_d, leak_g = _GradLeak(players[1].model), _GradLeak(players[0].model)
    players[0].callbacks = [*players[0].callbacks, leak_d]
    players[1].callbacks = [*players[1].callbacks, leak_g]
    result = fit_two_player(players, game, data, config=config, callbacks=callbacks, run_dir=tmp_path)
    assert result.steps == 3 * 12  # 384 samples / 32 per batch, 3 epochs
    assert leak_d.leaks == 0 and leak_g.leaks == 0 and leak_d.checked == 36 and leak_g.checked == 18
    d_steps = [r for r in read_metrics(tmp_path / "metrics-discriminator.jsonl") if r["kind"] == "step"]
    g_steps = [r for r in read_metrics(tmp_path / "metrics-generator.jsonl") if r["kind"] == "step"]
    assert len(d_steps) == 36 and len(g_steps) == 18  # the generator acts on every 2nd batch
    assert {r["accum_k"] for r in d_steps} == {2}
    assert all(2 <= r["accum_k"] <= 4 for r in g_steps)  # adaptive K within its bounds
    epochs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "epoch"]
    assert len(epochs) == 3 and all("discriminator_loss" in r and "generator_loss" in r for r in epochs)
    assert len(list((tmp_path / "samples").glob("epoch-*.png"))) == 3
    for n in NAMES:
        layers = __import__("pandas").read_parquet(tmp_path / f"layers-{n}.parquet")
        assert {"grad_norm", "update_ratio"} <= set(layers["stat"])
    assert "dead_fraction" in set(__import__("pandas").read_parquet(tmp_path / "layers-generator.parquet")["stat"])


def test_resume_after_a_crash_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    players, game, data, config, callbacks = gan_script.build()
    fit_two_player(players, game, data, config=config, callbacks=callbacks, run_dir=tmp_path / "a")
    players, game, data, config, callbacks = gan_script.build(extra=(_Crash(23),))
    with pytest.raises(KeyboardInterrupt):
        fit_two_player(players, game, data, config=config, callbacks=callbacks, run_dir=tmp_path / "b")
    players, game, data, config, callbacks = gan_script.build()
    fit_two_player(players, game, data, config=config, callbacks=callbacks, run_dir=tmp_path / "b", resume=True)
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    assert _same_metrics(tmp_path / "a", tmp_path / "b")


def test_bad_players_and_resume_mismatch_are_refused(tmp_path):
    players, game, data, config, callbacks = gan_script.build()
    with pytest.raises(ConfigError, match="two players"):
        fit_two_player([players[0], players[0]], game, data, config=config)
    fit_two_player(players, game, data, config=TwoPlayerConfig(epochs=1, batch_size=32), run_dir=tmp_path)
    players, game, data, config, callbacks = gan_script.build()
    with pytest.raises(RunDirError, match="batch_size"):
        fit_two_player(players, game, data, config=TwoPlayerConfig(epochs=2, batch_size=16), run_dir=tmp_path,
                       resume=True)
    with pytest.raises(RunDirError, match="already holds"):
        fit_two_player(players, game, data, config=TwoPlayerConfig(epochs=1, batch_size=32), run_dir=tmp_path)


def _run_script(*args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env)


@pytest.mark.slow
def test_resume_of_a_gan_after_kill_9_is_bit_identical(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert _run_script(str(reference)).wait(timeout=120) == 0
    proc = _run_script(str(killed), "--slow", "0.03")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once a mid-epoch checkpoint of the 2nd epoch exists
        ckpts = list_checkpoints(killed / "checkpoints")
        if ckpts and int(ckpts[-1].stem.split("-")[1]) >= 15:
            break
        assert proc.poll() is None, "training finished before it could be killed"
        time.sleep(0.02)
    time.sleep(0.07)  # die between checkpoints, with metrics written after the last one
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (killed / "model-generator.safetensors").exists()
    assert _run_script(str(killed), "--resume").wait(timeout=120) == 0
    assert _same_weights(reference, killed)
    assert _same_metrics(reference, killed)
