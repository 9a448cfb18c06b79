"""ScalarSink: callbacks fed with metrics.jsonl's records by the one MetricsWriter of fit."""

from __future__ import annotations

import pytest
import torch

from trainground.engine import FitConfig, ScalarSink, fit, read_metrics
from trainground.models import ModelConfig, build_model


class Recorder(ScalarSink):
    def __init__(self):
        self.batches: list[list[dict]] = []
        self.at_checkpoint: list[tuple[int, int]] = []  # (state.step, last step received)

    def write_records(self, records):
        self.batches.append(list(records))

    def on_checkpoint(self, state):
        last = max((r["step"] for b in self.batches for r in b), default=0)
        self.at_checkpoint.append((state.step, last))

    @property
    def records(self):
        return [r for b in self.batches for r in b]


def _model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(32,)), input_shape=(64,), num_classes=10)


def test_sinks_get_exactly_the_file_records_in_flushes(digits, tmp_path):
    sink = Recorder()
    cfg = FitConfig(epochs=2, batch_size=100, log_every=4, checkpoint_every=5, device="cpu")
    fit(_model(), digits, config=cfg, run_dir=tmp_path / "run", callbacks=[sink])
    assert sink.records == read_metrics(tmp_path / "run" / "metrics.jsonl")
    step_batches = [b for b in sink.batches if b[0]["kind"] == "step"]
    # shared buffer: records come in flushes (log_every, or cut short by a checkpoint/epoch end)
    assert max(len(b) for b in step_batches) == 4 and len(step_batches) < len(sink.records) / 2
    # at every checkpoint the sink already holds every record up to that step
    assert sink.at_checkpoint and all(step == last for step, last in sink.at_checkpoint)


def test_a_run_without_directory_still_feeds_sinks(digits):
    sink = Recorder()
    result = fit(_model(), digits, config=FitConfig(epochs=2, batch_size=100, device="cpu"), callbacks=[sink])
    steps = [r["step"] for r in sink.records if r["kind"] == "step"]
    assert steps == list(range(1, result.steps + 1))
    epochs = [r for r in sink.records if r["kind"] == "epoch"]
    assert [e["val_accuracy"] for e in epochs] == pytest.approx([h["val_accuracy"] for h in result.history])
