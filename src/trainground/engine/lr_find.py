"""The learning-rate range test: an exponential lr sweep that shows which learning rates learn.

Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017), in the form
fastai popularised: on a copy of the model, raise the lr exponentially from ``start`` to
``end`` over ``steps`` optimizer steps, one batch each, follow an exponential moving
average of the training loss, and stop once it diverges (``diverge`` x its best value, or
a non-finite loss).

Which lr to suggest. Two readings are common: the lr of the steepest fall of the smoothed
loss (fastai v1), and a tenth of the lr where the smoothed loss is lowest (Smith's "a
decade below divergence", fastai's ``lr_min``). We suggest **min / 10**: the steepest
point is the argmax of a finite difference of a noisy curve, and moves by a decade
between seeds on small data, whereas the minimum of the smoothed loss is stable to a
factor of ~2; ``fit``'s automatic image schedule (``engine/schedule.py``) uses the same
rule. The steepest point is reported too, for those who prefer it.

The user's model, optimizer and the global random state are left untouched.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from trainground.bounds import AT_LEAST_ONE, POSITIVE
from trainground.engine.batches import BatchSource
from trainground.engine.config import FitConfig
from trainground.engine.fit_setup import make_optimizer  # the loop's own optimizer factory
from trainground.errors import ConfigError
from trainground.losses.sample_weights import loss_for_batch


@dataclass
class LRFindConfig:
    """Options of the range test; the defaults are fastai's (1e-7 to 10 over 100 steps)."""

    # First learning rate of the sweep: small enough that nothing moves.
    start: Annotated[float, POSITIVE] = 1e-7
    # Last learning rate: large enough that any network diverges before it.
    end: Annotated[float, POSITIVE] = 10.0
    # Optimizer steps of the sweep (one batch each); 100 puts ~12 points in each decade.
    steps: Annotated[int, AT_LEAST_ONE] = 100
    # Weight of the past in the loss's moving average; 0.9 averages ~10 steps, enough to see
    # through batch noise while a 100-step sweep still reacts within a decade of lr.
    smoothing: float = 0.9
    # The sweep stops once the smoothed loss exceeds this multiple of its best value.
    diverge: Annotated[float, POSITIVE] = 4.0


@dataclass
class LRFindResult:
    """The sweep and its reading.

    Attributes:
        lrs, losses, smoothed: per step, the lr used, the batch loss and the bias-corrected EMA.
        min_lr: lr at the lowest smoothed loss.
        steepest_lr: lr of the steepest fall of the smoothed loss before its minimum (None
            when the sweep is too short to tell).
        suggestion: the lr we suggest: ``min_lr / 10`` (see the module docstring).
        rule: how ``suggestion`` was chosen, in words.
        stopped: ``"diverged"``, ``"non-finite"`` or ``"end"`` (the sweep reached ``end``).
    """

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    min_lr: float = math.nan
    steepest_lr: float | None = None
    suggestion: float = math.nan
    rule: str = "a tenth of the lr at the minimum of the smoothed loss"
    stopped: str = "end"

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["losses"] = [v if math.isfinite(v) else None for v in self.losses]
        return values


def lr_range_test(
    model: nn.Module, data: Dataset | BatchSource, *, fit_config: FitConfig | None = None,
    config: LRFindConfig | None = None, loss_fn: nn.Module | None = None, device: str | torch.device = "cpu",
) -> LRFindResult:
    """Run the exponential lr sweep on a copy of ``model`` over batches of ``data``.

    Args:
        model: the network (copied; the original is not trained).
        data: training data (items ``(index, x, y)``) or a ``BatchSource``.
        fit_config: optimizer, weight decay, momentum, batch size and seed (``FitConfig()``).
        config: the sweep's range and stopping rule.
        loss_fn: batch-mean loss; cross-entropy when omitted.
        device: where the copy trains.

    Returns:
        the curve, the lr at its minimum and its steepest fall, and the suggestion.

    References:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017.
    """
    fit_config = fit_config or FitConfig()
    config = config or LRFindConfig()
    if not config.start < config.end:
        raise ConfigError(f"lr_find: start ({config.start}) must be below end ({config.end})")
    if not 0 <= config.smoothing < 1:
        raise ConfigError(f"lr_find: smoothing must be in [0, 1), got {config.smoothing}")
    source = data if isinstance(data, BatchSource) else BatchSource(data)
    if len(source) == 0:
        raise ConfigError("lr_find: the training data is empty")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device)
    probe = copy.deepcopy(model).to(device).train()
    optimizer = make_optimizer(replace(fit_config, lr=config.start), probe.parameters())
    factor = (config.end / config.start) ** (1 / max(config.steps - 1, 1))
    generator = torch.Generator().manual_seed(fit_config.seed + 1)
    rng_state = torch.get_rng_state()  # dropout in the probe must not shift a later run
    result = LRFindResult()
    avg, best, lr = 0.0, math.inf, config.start
    try:
        while len(result.lrs) < config.steps:
            for rows in torch.randperm(len(source), generator=generator).split(fit_config.batch_size):
                for group in optimizer.param_groups:
                    group["lr"] = lr
                index, x, y = source.batch(rows, device)
                loss = loss_for_batch(loss_fn, probe(x), y, index)
                value = float(loss.detach())
                result.lrs.append(lr)
                result.losses.append(value)
                if not math.isfinite(value):
                    result.smoothed.append(math.nan)
                    result.stopped = "non-finite"
                    return _read(result)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step = len(result.lrs)
                avg = config.smoothing * avg + (1 - config.smoothing) * value
                smooth = avg / (1 - config.smoothing**step)  # bias-corrected
                result.smoothed.append(smooth)
                best = min(best, smooth)
                if step > 1 and smooth > config.diverge * best:
                    result.stopped = "diverged"
                    return _read(result)
                if step >= config.steps:
                    return _read(result)
                lr *= factor
        return _read(result)
    finally:
        torch.set_rng_state(rng_state)


def _read(result: LRFindResult) -> LRFindResult:
    """Fill ``min_lr``, ``steepest_lr`` and ``suggestion`` from the curve."""
    smooth = np.asarray(result.smoothed, dtype=float)
    lrs = np.asarray(result.lrs, dtype=float)
    finite = np.isfinite(smooth)
    if not finite.any():
        result.min_lr = result.suggestion = float(lrs[0])
        result.rule = "the first lr of the sweep (the loss was never finite)"
        return result
    low = int(np.nanargmin(np.where(finite, smooth, np.nan)))
    result.min_lr = float(lrs[low])
    result.suggestion = result.min_lr / 10
    if low >= 2:
        # d(loss)/d(log lr) between consecutive points, before the minimum only.
        slope = np.diff(smooth[: low + 1]) / np.diff(np.log(lrs[: low + 1]))
        result.steepest_lr = float(lrs[int(np.argmin(slope))])
    return result
