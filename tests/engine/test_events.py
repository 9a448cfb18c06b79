from __future__ import annotations

import torch

from trainground.engine import Callback, Event, FitConfig, fit
from trainground.models import ModelConfig, build_model


class Recorder(Callback):
    def __init__(self):
        self.events: list[tuple[str, int, int]] = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            events = object.__getattribute__(self, "events")
            return lambda state: events.append((name[3:], state.epoch, state.step))
        return object.__getattribute__(self, name)


def test_events_fire_in_the_order_the_docstring_describes(digits):
    data = digits.subset(torch.arange(20))
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(8,)), input_shape=(64,), num_classes=10)
    rec = Recorder()
    fit(model, data, config=FitConfig(epochs=2, batch_size=10, val_fraction=0.0, device="cpu"), callbacks=[rec])
    per_batch = ["batch_start", "after_forward", "after_backward", "batch_end"]
    expected = ["fit_start"]
    for _ in range(2):
        expected += ["epoch_start"] + per_batch * 2 + ["epoch_end"]
    expected += ["fit_end"]
    assert [e for e, _, _ in rec.events] == expected
    steps_at_batch_end = [s for e, _, s in rec.events if e == "batch_end"]
    assert steps_at_batch_end == [1, 2, 3, 4]
    # every Event has a hook on Callback, and the docstring names every event
    for event in Event:
        assert hasattr(Callback, f"on_{event.value}")
        assert event.name in Event.__doc__


def test_checkpoint_event_fires_only_with_a_run_dir(digits, tmp_path):
    data = digits.subset(torch.arange(20))
    model = build_model(ModelConfig(hidden=(8,)), input_shape=(64,), num_classes=10)
    rec = Recorder()
    fit(model, data, config=FitConfig(epochs=1, batch_size=10, val_fraction=0.0, device="cpu",
                                      checkpoint_every=1), callbacks=[rec], run_dir=tmp_path / "run")
    names = [e for e, _, _ in rec.events]
    # step 1 mid-epoch, then the epoch-end checkpoint (not a second one for step 2 mid-epoch)
    assert names.count("checkpoint") == 2
    assert names.index("checkpoint") > names.index("batch_end")


class ValWatcher(Callback):
    def __init__(self):
        self.val_rows: list[int] = []
        self.batch_at_epoch_end: list[object] = []
        self.last_train_batch: object = None

    def on_batch_end(self, state):
        self.last_train_batch = state.batch

    def on_val_forward(self, state):
        self.val_rows += state.batch[0].tolist()
        assert state.logits.shape == (len(state.batch[0]), 10)

    def on_epoch_end(self, state):
        self.batch_at_epoch_end.append(state.batch is self.last_train_batch)


def test_val_forward_shows_every_validation_sample_once_per_epoch_and_restores_the_batch(digits):
    data = digits.subset(torch.arange(300))
    model = build_model(ModelConfig(hidden=(8,)), input_shape=(64,), num_classes=10)
    watch = ValWatcher()
    result = fit(model, data, config=FitConfig(epochs=2, batch_size=16, val_fraction=0.5, device="cpu"),
                 callbacks=[watch])
    val_index = sorted(result.val_index.tolist())
    assert len(val_index) == 150
    assert sorted(watch.val_rows) == sorted(val_index * 2)
    assert watch.batch_at_epoch_end == [True, True]
