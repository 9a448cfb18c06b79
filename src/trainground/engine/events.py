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
                with guard.autocast():             # AMP: bf16/fp16 autocast, or nothing
                    logits = model(x)
                    loss = loss_fn(logits, y)
                AFTER_FORWARD                      # state.logits, state.loss
                guard.backward(loss, batch_size=len(y))
                    # loss's gradient, weighted by len(y) and the AMP loss scale, added to param.grad
                AFTER_BACKWARD                     # param.grad / guard.grad_scale = the window's mean grad
                state.window_closed = guard.step() # when K micro-batches are in (K = 1: every batch):
                    #   unscale (AMP); divide by the window's sample count
                    #   chain: spike skip -> clips -> trust region (GuardConfig, or Guard(chain=...))
                    #   optimizer.step(), update scaled by the trust region; a skipped step
                    #   restores the weights exactly; param.grad emptied
                    #   every check_every steps: skips/rollback -> actions.jsonl, snapshot, adapt K
                BATCH_END                          # state.step += 1 happened just before
                if step % checkpoint_every == 0:
                    CHECKPOINT                     # callbacks flush; their state_dict() is saved
            guard.step(force=True)                 # a short last window still steps (weighted exactly)
            metrics = evaluate(validation split)   # eval mode, no gradients; for each batch:
                VAL_FORWARD                        #   state.batch, state.logits of that batch
            EPOCH_END                              # state.epoch_metrics: train/val loss and accuracy
            if last epoch or checkpoint_seconds passed since the last one:
                CHECKPOINT                         # model, optimizer, guard.state_dict(), rng, callbacks
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
    VAL_FORWARD = "val_forward"
    EPOCH_END = "epoch_end"
    CHECKPOINT = "checkpoint"
    FIT_END = "fit_end"
