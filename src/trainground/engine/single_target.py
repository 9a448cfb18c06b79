"""The single-target side of ``fit``: one class column, a batch-mean loss, accuracy.

``fit`` runs one of two target modes with the same four jobs: the running sums of an
epoch (kept on the device, no host sync per step), one batch through the Guard, the epoch's
metrics, and what a checkpoint must add. This is the mode of a dataset without ``.tasks``;
``engine.multitarget.MultiTarget`` is the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from trainground.engine.batches import BatchSource
from trainground.engine.callbacks import CallbackList
from trainground.engine.evaluate import Observe, evaluate
from trainground.engine.events import Event
from trainground.engine.state import TrainState
from trainground.gradients import Guard
from trainground.losses.sample_weights import loss_for_batch


class SingleTarget:
    """What ``fit`` does for items ``(index, x, y)`` with one class label ``y``.

    Args:
        loss_fn: batch-mean loss ``loss_fn(logits, y)``; a loss with ``indexed_loss`` (per-sample
            weights keyed by the input index, e.g. ``losses.WeightedCrossEntropy``) also gets the
            batch's index.
    """

    def __init__(self, loss_fn: nn.Module) -> None:
        self.loss_fn = loss_fn

    def new_totals(self, device: torch.device) -> Tensor:
        """``[3]``: loss sum, correct predictions, samples."""
        return torch.zeros(3, device=device, dtype=torch.float64)

    def train_step(self, state: TrainState, batch: tuple[Tensor, Tensor, Tensor], hooks: CallbackList,
                   totals: Tensor, guard: Guard) -> None:
        """One batch through the Guard; every line below is an event or the maths between two.

        The Guard accumulates the batch's gradient weighted by its size and steps the optimizer
        when its window closes (every batch with the default K=1), after unscaling, the transform
        chain and the spike checks.
        """
        state.batch = batch
        hooks.fire(Event.BATCH_START, state)
        index, x, y = batch
        with guard.autocast():
            state.logits = state.model(x)
            state.loss = loss_for_batch(self.loss_fn, state.logits, y, index)
        hooks.fire(Event.AFTER_FORWARD, state)
        guard.backward(state.loss, batch_size=len(y))
        hooks.fire(Event.AFTER_BACKWARD, state)
        state.window_closed = guard.step()
        with torch.no_grad():
            n = len(y)
            totals[0] += state.loss.detach().double() * n
            totals[1] += (state.logits.argmax(dim=1) == y).sum()
            totals[2] += n
        state.step += 1
        state.batch_in_epoch += 1
        hooks.fire(Event.BATCH_END, state)

    def end_epoch(self, model: nn.Module, totals: Tensor, val: BatchSource | None, *, batch_size: int,
                  device: torch.device, observe: Observe | None = None) -> dict[str, float]:
        """``train_loss``, ``train_accuracy`` from the epoch's sums; ``val_loss``, ``val_accuracy``."""
        loss_sum, correct, seen = totals.tolist()
        metrics = {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}
        if val is not None and len(val):
            scores = evaluate(model, val, self.loss_fn, batch_size=batch_size, device=device, observe=observe)
            metrics.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        return metrics

    def checkpoint_state(self, guard: Guard) -> dict[str, Any]:
        return {}  # the loss has no state of its own

    def load_checkpoint_state(self, ckpt: dict[str, Any], guard: Guard) -> None:
        """Nothing to restore: ``checkpoint_state`` adds nothing (the loop restores model, optimizer and Guard)."""
