"""Snapshots and rollback: restore the last healthy model + optimizer state when a spike persists."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class RollbackAware(Protocol):
    """Hooks of a transform whose state must follow a rollback (spike streaks, trust scales).

    The Guard finds them by these two methods, not by the transform's type, so any transform of
    a custom chain can take part.
    """

    def snapshot_state(self) -> Any:
        """What to keep with a snapshot of the model (taken while the run is healthy)."""

    def rollback(self, saved: Any, *, shrink: float) -> Any:
        """The model went back to the snapshot that holds ``saved`` (this transform's
        ``snapshot_state()`` then). ``shrink`` (< 1): how much the steps that led to the spike
        should be shortened. Returns what the snapshot keeps from now on (repeated rollbacks to
        the same snapshot compound)."""


class Rollback:
    """An in-memory snapshot of model, optimizer and transform state, and the streak that restores it.

    A skipped step is a spike; ``after`` consecutive ones (counted across checks) are a
    persistent spike: the model and optimizer go back to the snapshot and the batches since are
    dropped. A snapshot is taken only from a healthy stretch (no skip since the last check).

    Args:
        model: the model whose ``state_dict`` is saved.
        optimizer: its optimizer (state saved too: momentum must not carry the spike).
        after: consecutive skipped steps that make a spike persistent.
        every: steps between snapshots.
        shrink: passed to each transform's ``rollback`` hook (``GuardConfig.rollback_trust``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, after: int, every: int,
                 shrink: float) -> None:
        self.model, self.optimizer = model, optimizer
        self.after, self.every, self.shrink = after, every, shrink
        self.snapshot: dict[str, Any] | None = None
        self.step = -1  # the optimizer step the snapshot holds the state before
        self.streak = 0  # consecutive skipped steps, as last read on the host

    def take(self, step: int, transforms: Iterable[RollbackAware]) -> None:
        """Snapshot the current state as the last good one (state before optimizer step ``step``)."""
        self.snapshot = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "transforms": [[t, t.snapshot_state()] for t in transforms],
        }
        self.step = step

    def count(self, kept: Sequence[float]) -> int:
        """Feed the kept (1) / skipped (0) flags of the steps since the last check; returns the
        longest run of skips among them (a run that started before this check included)."""
        streak, longest = self.streak, 0
        for keep in kept:
            streak = streak + 1 if keep == 0 else 0
            longest = max(longest, streak)
        self.streak = streak
        return longest

    def due(self, longest: int) -> bool:
        """Whether a streak this long is a persistent spike that a snapshot can undo."""
        return longest >= self.after and self.snapshot is not None

    def snapshot_due(self, next_step: int) -> bool:
        return next_step - self.step >= self.every

    def restore(self) -> int:
        """Load the snapshot into model and optimizer and tell its transforms; returns its step."""
        assert self.snapshot is not None
        self.model.load_state_dict(self.snapshot["model"])
        self.optimizer.load_state_dict(copy.deepcopy(self.snapshot["optimizer"]))
        self.streak = 0
        for entry in self.snapshot["transforms"]:
            entry[1] = entry[0].rollback(entry[1], shrink=self.shrink)
        return self.step
