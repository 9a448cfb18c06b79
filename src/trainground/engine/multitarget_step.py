"""One multi-target batch through the Guard (the twin of ``loop._train_step``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainground.engine.callbacks import CallbackList
from trainground.engine.events import Event
from trainground.engine.multitarget import MultiTarget, task_gradient_extras
from trainground.engine.state import TrainState
from trainground.gradients import Guard


def multi_train_step(state: TrainState, batch: tuple[Tensor, Any, Any], multi: MultiTarget, hooks: CallbackList,
                     totals: Tensor, guard: Guard) -> None:
    """Forward to ``{task: output}``, per-task losses, then the Guard.

    With a tasks handler on the Guard (``TaskGradients``) the weighted per-task losses go to
    ``guard.backward`` as a mapping (one backward per task: norms, cosines, per-task clip,
    PCGrad); without, their sum goes as one loss. ``state.loss`` is the weighted sum either
    way; ``state.step_extras`` holds each task's raw loss and gradient figures (device
    tensors, written by ``MetricsWriter`` at its next flush).
    """
    state.batch = batch
    hooks.fire(Event.BATCH_START, state)
    index, x, y = batch
    with guard.autocast():
        state.logits = multi.outputs(state.model(x))
        weighted, raw = multi.train_losses(state.logits, y, index)
        state.loss = torch.stack([v.float().reshape(()) for v in weighted.values()]).sum()
    hooks.fire(Event.AFTER_FORWARD, state)
    n = len(index)
    guard.backward(weighted if guard.tasks is not None else state.loss, batch_size=n)
    hooks.fire(Event.AFTER_BACKWARD, state)
    state.window_closed = guard.step()
    multi.add(totals, state.loss, raw, state.logits, y, n)
    extras = {f"loss/{k}": v.detach() for k, v in raw.items()}
    if guard.tasks is not None:
        extras.update(task_gradient_extras(guard.tasks))
    state.step_extras = extras
    state.step += 1
    state.batch_in_epoch += 1
    hooks.fire(Event.BATCH_END, state)
