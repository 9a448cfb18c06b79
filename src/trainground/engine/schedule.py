"""Learning rate and training length chosen from the data (the image recipe's default).

A fixed ``lr=1e-3, epochs=20`` suits tables of thousands of rows, but a small image folder
gets only a few optimizer steps per epoch: 400 images at batch 64 are 7 steps, 140 steps
in 20 epochs, far too few for a CNN trained from scratch, which then underfits. Two rules,
fixed before any measurement:

- **length in steps, not epochs**: train for at least ``MIN_STEPS`` optimizer updates
  (Adam fits a small network from scratch in the order of a thousand updates: about one
  epoch of MNIST at batch 64), i.e. ``epochs = max(epochs, ceil(MIN_STEPS / steps_per_epoch))``,
  at most ``MAX_EPOCHS``; early stopping (``diagnose``) still ends training when the
  validation loss stops improving.
- **epochs of at least ``MIN_STEPS_PER_EPOCH`` steps**: the batch shrinks (not below
  ``MIN_BATCH``) until an epoch holds 20 updates. Early stopping, the per-epoch records
  and the early-learning window of ``diagnose`` all work in epochs; an epoch of 6 steps is
  too coarse a unit for them (a window of 30 such epochs averages mostly underfit models).
- **learning rate from an LR range test** (Smith, "Cyclical Learning Rates for Training
  Neural Networks", WACV 2017): on a copy of the model, raise the lr exponentially from
  ``1e-5`` to ``1`` over ``RANGE_STEPS`` steps, follow the smoothed training loss, and take
  a tenth of the lr where it was lowest (a decade below the point of divergence, the usual
  reading of the test), clamped to ``[1e-4, 1e-2]``. The user's model and the global
  random state are left untouched.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from trainground.engine.batches import BatchSource
from trainground.engine.config import FitConfig
from trainground.losses.sample_weights import loss_for_batch

MIN_STEPS = 1000
MIN_STEPS_PER_EPOCH, MIN_BATCH = 20, 16
MAX_EPOCHS = 300
RANGE_STEPS = 100
LR_START, LR_END = 1e-5, 1.0
LR_MIN, LR_MAX = 1e-4, 1e-2
_SMOOTHING = 0.9  # exponential moving average of the loss over ~10 steps
_DIVERGED = 4.0  # the test stops once the smoothed loss exceeds 4x its best
logger = logging.getLogger("trainground.engine")


def applies(config: FitConfig, data: Any) -> bool:
    """Whether ``fit`` chooses lr and epochs itself (``config.auto_schedule`` and the data's kind)."""
    if config.auto_schedule == "never":
        return False
    return config.auto_schedule == "always" or getattr(data, "kind", None) == "image"


def choose_schedule(
    model: nn.Module, train: BatchSource, config: FitConfig, loss_fn: nn.Module, make_optimizer: Any,
    device: torch.device,
) -> FitConfig:
    """``config`` with a smaller batch for small data, ``lr`` from a range test and ``epochs``
    raised to at least ``MIN_STEPS`` updates."""
    batch_size = min(config.batch_size, max(MIN_BATCH, len(train) // MIN_STEPS_PER_EPOCH))
    config = replace(config, batch_size=batch_size)
    steps_per_epoch = -(-len(train) // config.batch_size)
    epochs = min(max(config.epochs, math.ceil(MIN_STEPS / steps_per_epoch)), max(config.epochs, MAX_EPOCHS))
    lr = range_test(model, train, config, loss_fn, make_optimizer, device)
    logger.warning(
        "chose lr %.2g (learning-rate range test), batch %d and %d epochs (at least %d optimizer steps) for %s "
        "data; set fit.lr / --lr to choose them yourself", lr, batch_size, epochs, MIN_STEPS,
        "image" if config.auto_schedule == "images" else "this",
    )
    return replace(config, lr=lr, epochs=epochs, auto_schedule="never")


def range_test(
    model: nn.Module, train: BatchSource, config: FitConfig, loss_fn: nn.Module, make_optimizer: Any,
    device: torch.device,
) -> float:
    """A tenth of the lr at which the smoothed training loss of an exponential lr sweep is lowest."""
    probe = copy.deepcopy(model).to(device).train()
    optimizer = make_optimizer(replace(config, lr=LR_START), probe.parameters())
    factor = (LR_END / LR_START) ** (1 / max(RANGE_STEPS - 1, 1))
    generator = torch.Generator().manual_seed(config.seed + 1)
    rng_state = torch.get_rng_state()  # dropout etc. in the probe must not shift the real run
    best, best_lr, smooth = math.inf, LR_START, 0.0
    lr, step = LR_START, 0
    try:
        while step < RANGE_STEPS:
            for rows in torch.randperm(len(train), generator=generator).split(config.batch_size):
                for group in optimizer.param_groups:
                    group["lr"] = lr
                index, x, y = train.batch(rows, device)
                loss = loss_for_batch(loss_fn, probe(x), y, index)
                if not torch.isfinite(loss):
                    return _clamp(best_lr / 10)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                smooth = _SMOOTHING * smooth + (1 - _SMOOTHING) * float(loss.detach())
                value = smooth / (1 - _SMOOTHING**step)  # bias-corrected
                if value < best:
                    best, best_lr = value, lr
                if value > _DIVERGED * best or step >= RANGE_STEPS:
                    return _clamp(best_lr / 10)
                lr *= factor
        return _clamp(best_lr / 10)
    finally:
        torch.set_rng_state(rng_state)


def _clamp(lr: float) -> float:
    return float(min(max(lr, LR_MIN), LR_MAX))
