"""``RecordSamples``: the per-sample recorder plugged into ``fit``."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from trainground.engine.batches import BatchSource
from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState
from trainground.monitors.samples import SampleRecorder


class RecordSamples(Callback):
    """Feeds every training batch to a :class:`SampleRecorder` right after the forward pass.

    The logits are those the loop computed anyway (no extra forward pass for training
    samples); each training sample is recorded once per epoch, as the model saw it just
    before stepping on it. With ``record_validation``, the samples of ``fit``'s own validation
    split are recorded from its evaluation at each epoch's end (the ``VAL_FORWARD`` event: no
    forward pass of ours), so held-out samples get curves too; ``val_data`` instead records
    another dataset from a pass of our own at each epoch's end.
    Buffers are flushed at every checkpoint, so a resumed run's records equal an
    uninterrupted run's.

    Args:
        recorder: where the records go.
        val_data: a dataset (items ``(index, x, y)``) other than ``fit``'s validation split to
            record each epoch, or None.
        val_batch_size: batch size of that pass.
        record_validation: record ``fit``'s validation split as ``fit`` evaluates it.
        task: a multi-target run's task to record (its output and target); None for a
            single-target run.
    """

    def __init__(self, recorder: SampleRecorder, *, val_data: Dataset | None = None, val_batch_size: int = 1024,
                 task: str | None = None, record_validation: bool = False) -> None:
        if record_validation and val_data is not None:
            raise ValueError("RecordSamples: give val_data or record_validation=True, not both")
        self.recorder = recorder
        self.task = task
        self.record_validation = record_validation
        self.val = None if val_data is None or len(val_data) == 0 else BatchSource(val_data)  # type: ignore[arg-type]
        self.val_batch_size = val_batch_size

    def on_epoch_start(self, state: TrainState) -> None:
        self.recorder.set_epoch(state.epoch)

    def on_after_forward(self, state: TrainState) -> None:
        assert state.batch is not None and state.logits is not None
        index, _, y = state.batch
        if self.task is None:
            self.recorder.update(index, state.logits, y)
        else:
            self.recorder.update(index, state.logits[self.task], y[self.task])  # type: ignore[index]

    def on_val_forward(self, state: TrainState) -> None:
        if not self.record_validation:
            return
        assert state.batch is not None and state.logits is not None
        index, _, y = state.batch
        if self.task is None:
            self.recorder.update(index, state.logits, y, split="val")
        else:
            self.recorder.update(index, state.logits[self.task], y[self.task], split="val")  # type: ignore[index]

    @torch.no_grad()
    def on_epoch_end(self, state: TrainState) -> None:
        if self.val is None:
            return
        model = state.model
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            for rows in torch.arange(len(self.val)).split(self.val_batch_size):
                index, x, y = self.val.batch(rows, device)
                out = model(x)
                if self.task is not None:
                    out, y = out[self.task], y[self.task]
                self.recorder.update(index, out, y, split="val")
        finally:
            model.train(was_training)

    def on_checkpoint(self, state: TrainState) -> None:
        self.recorder.flush()

    def on_fit_end(self, state: TrainState) -> None:
        self.recorder.close()

    def state_dict(self) -> dict[str, Any]:
        return self.recorder.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recorder.load_state_dict(state)
