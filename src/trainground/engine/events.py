"""The events of the training loop."""

from __future__ import annotations

from enum import Enum


class Event(str, Enum):
    """Where each event fires in ``fit``; callbacks implement ``on_<event>`` to watch it.

    The loop, in pseudocode (``state`` is the :class:`TrainState` every callback gets)::

        FIT_START                                  # after resume: state.step > 0
        for epoch in range(state.epoch, epochs):
            EPOCH_START
            for index, x, y in batches(epoch):     # seeded permutation of the train split
                BATCH_START                        # state.batch = (index, x, y)
                logits = model(x)
                loss = loss_fn(logits, y)
                AFTER_FORWARD                      # state.logits, state.loss
                loss.backward()
                AFTER_BACKWARD                     # gradients are in param.grad
                optimizer.step(); optimizer.zero_grad()
                BATCH_END                          # state.step += 1 happened just before
                if step % checkpoint_every == 0:
                    CHECKPOINT                     # callbacks flush; their state_dict() is saved
            metrics = evaluate(validation split)
            EPOCH_END                              # state.epoch_metrics: train/val loss and accuracy
            if last epoch or checkpoint_seconds passed since the last one:
                CHECKPOINT
        FIT_END                                    # final weights are written after this

    Callbacks observe; they do not change the model or the optimizer. Anything that
    acts on training (clipping, accumulation, skipping) belongs to the Guard.
    """

    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    BATCH_START = "batch_start"
    AFTER_FORWARD = "after_forward"
    AFTER_BACKWARD = "after_backward"
    BATCH_END = "batch_end"
    EPOCH_END = "epoch_end"
    CHECKPOINT = "checkpoint"
    FIT_END = "fit_end"
