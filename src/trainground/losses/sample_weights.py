"""Per-sample (event) weights looked up by each sample's input index, and the weighted mean.

A sample "counts w times" when a user-given condition holds (a rare critical event, a
trusted source): its loss enters the batch mean with weight ``w`` and the mean is divided
by the sum of the weights, exactly as if the sample were repeated ``w`` times in the batch.

Weights are keyed by the sample's ``index`` (its row in the input, the first element of
every ``(index, x, y)`` batch), never by its position in a batch or a split, so the same
table works in ``fit`` (which hands the index to a loss that has ``indexed_loss``), in a
plain loop (``loss_fn.indexed_loss(logits, y, index)``), after shuffling and subsetting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from trainground.errors import ConfigError

Reduction = Literal["mean", "sum", "none"]


def weighted_mean(per_sample: Tensor, weight: Tensor | None = None, reduction: Reduction = "mean") -> Tensor:
    """Reduce per-sample losses, each counted ``weight`` times.

    Args:
        per_sample: ``[N]`` losses.
        weight: ``[N]`` non-negative weights, or None for all ones.
        reduction: ``"mean"`` divides the weighted sum by the sum of the weights (the
            convention of ``F.cross_entropy(weight=...)``); ``"sum"``; ``"none"`` returns the
            weighted per-sample losses.
    """
    if weight is not None:
        per_sample = per_sample * weight.to(per_sample.dtype)
    if reduction == "none":
        return per_sample
    total = per_sample.sum()
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise ConfigError(f"unknown reduction {reduction!r}; known: mean, sum, none")
    if weight is None:
        return total / max(per_sample.numel(), 1)
    # An all-zero batch of weights gives a loss of 0 (no gradient), not 0/0.
    return total / weight.sum().to(total.dtype).clamp_min(torch.finfo(total.dtype).tiny)


class SampleWeights:
    """Weight of each training sample, looked up on the device by the sample's input index.

    Indices absent from the table get ``default``. The lookup is a ``searchsorted`` on the
    sorted indices: no host sync, any index values (sparse, large), one gather per batch.

    Args:
        index: ``[M]`` input indices (the ``index`` of ``(index, x, y)``), distinct.
        weight: ``[M]`` non-negative weight of each of them.
        default: weight of an index not in the table.
    """

    def __init__(self, index: Tensor | np.ndarray, weight: Tensor | np.ndarray, *, default: float = 1.0) -> None:
        keys = torch.as_tensor(np.asarray(index), dtype=torch.long).reshape(-1)
        values = torch.as_tensor(np.asarray(weight), dtype=torch.float32).reshape(-1)
        if keys.shape != values.shape:
            raise ConfigError(f"sample weights: {len(keys)} indices but {len(values)} weights")
        if not bool(torch.isfinite(values).all()) or bool((values < 0).any()) or default < 0:
            raise ConfigError("sample weights must be finite and >= 0")
        order = torch.argsort(keys)
        self.keys, self.values, self.default = keys[order], values[order], float(default)
        if len(self.keys) > 1 and bool((self.keys[1:] == self.keys[:-1]).any()):
            raise ConfigError("sample weights: an index appears twice")

    @classmethod
    def where(cls, index: Tensor | np.ndarray, condition: Tensor | np.ndarray, *, weight: float = 10.0) -> SampleWeights:
        """Samples whose ``condition`` holds count ``weight`` times, the others once.

        Args:
            index: ``[M]`` input indices.
            condition: ``[M]`` booleans, aligned with ``index``.
            weight: how many times a sample meeting the condition counts.
        """
        cond = torch.as_tensor(np.asarray(condition)).reshape(-1).bool()
        return cls(index, torch.where(cond, float(weight), 1.0), default=1.0)

    @classmethod
    def from_dataset(
        cls, data: Any, condition: Callable[[Tensor, Tensor, Tensor], Tensor], *, weight: float = 10.0
    ) -> SampleWeights:
        """Evaluate ``condition(index, x, y) -> [N] bool`` once on a whole ``IndexedDataset``."""
        if not hasattr(data, "get_batch"):
            raise ConfigError("SampleWeights.from_dataset needs an IndexedDataset (with get_batch)")
        index, x, y = data.get_batch(torch.arange(len(data)))
        return cls.where(index, condition(index, x, y), weight=weight)

    def __call__(self, index: Tensor) -> Tensor:
        """``[N]`` float32 weights of the samples with input indices ``index``, on ``index``'s device."""
        if self.keys.device != index.device:  # moved once, then every lookup stays on the device
            self.keys, self.values = self.keys.to(index.device), self.values.to(index.device)
        if len(self.keys) == 0:
            return torch.full(index.shape, self.default, device=index.device)
        pos = torch.searchsorted(self.keys, index).clamp_max(len(self.keys) - 1)
        return torch.where(self.keys[pos] == index, self.values[pos], self.default)

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.keys.cpu(), "weight": self.values.cpu(), "default": self.default}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        fresh = SampleWeights(state["index"], state["weight"], default=state["default"])
        self.keys, self.values, self.default = fresh.keys, fresh.values, fresh.default


class SampleWeightedLoss(nn.Module):
    """Base of the losses here: ``forward(logits, y, sample_weight=None)`` plus ``indexed_loss``.

    ``fit`` calls ``indexed_loss(logits, y, index)`` on any loss that has it, so event
    weights apply in training; validation calls ``loss(logits, y)``, i.e. without them.
    """

    sample_weights: SampleWeights | None

    def __init__(self, sample_weights: SampleWeights | None = None) -> None:
        super().__init__()
        self.sample_weights = sample_weights

    def indexed_loss(self, logits: Tensor, target: Tensor, index: Tensor) -> Tensor:
        """The loss with each sample weighted by ``self.sample_weights(index)`` (if any)."""
        weight = None if self.sample_weights is None else self.sample_weights(index)
        return self(logits, target, sample_weight=weight)


def loss_for_batch(loss_fn: Callable[..., Tensor], logits: Tensor, target: Tensor, index: Tensor) -> Tensor:
    """``loss_fn.indexed_loss(logits, target, index)`` when the loss has it, else ``loss_fn(logits, target)``."""
    indexed = getattr(loss_fn, "indexed_loss", None)
    return loss_fn(logits, target) if indexed is None else indexed(logits, target, index)
