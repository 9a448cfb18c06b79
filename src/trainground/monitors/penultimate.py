"""Every sample's penultimate features, captured from the forward passes the loop makes anyway."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainground.monitors.representation import penultimate_module


class PenultimateFeatures:
    """Keeps, for each of ``num_samples`` samples, the input of the model's head at its last forward.

    The head is ``model.head`` or the last ``nn.Linear`` (:func:`penultimate_module`), or
    the module given; a forward pre-hook keeps a detached reference to its input (no copy,
    no extra forward pass) and :meth:`write` puts it in the rows of the batch's sample
    positions once the loop knows them. :meth:`snapshot` keeps the current table (the
    diagnosis snapshots it at the epoch of lowest validation loss, beside the
    early-learning probabilities). Memory: ``num_samples x width`` floats on the device.

    Args:
        model: the network.
        num_samples: positions run from 0 to ``num_samples - 1``.
        module: the layer whose input is the representation; found automatically when None.
    """

    def __init__(self, model: nn.Module, num_samples: int, *, module: nn.Module | None = None) -> None:
        found = penultimate_module(model) if module is None else ("", module)
        self.module = None if found is None else found[1]
        self.num_samples = int(num_samples)
        self.table: Tensor | None = None
        self.best: Tensor | None = None
        # Epoch at which each row was last written (-1: never): a distributed run keeps, per
        # sample, the row of the rank that saw it last.
        self.epoch = 0
        self.stamp: Tensor | None = None
        self.best_stamp: Tensor | None = None
        self._last: Tensor | None = None
        self._handle: Any = None if self.module is None else self.module.register_forward_pre_hook(self._hook)

    @property
    def found(self) -> bool:
        return self.module is not None

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0] if inputs else None
        if isinstance(x, Tensor) and x.ndim >= 2:
            # Sequence models feed the head one vector per sequence ([B, D]); keep [B, D].
            self._last = x.detach().reshape(x.shape[0], -1)

    def take(self) -> Tensor | None:
        """The last forward's features (a detached reference, no copy), and forget them."""
        x, self._last = self._last, None
        return x

    @torch.no_grad()
    def write(self, positions: Tensor, features: Tensor | None = None) -> None:
        """Store ``features`` (default: the last forward's) at ``positions`` (``[B]``, same order)."""
        x = self._last if features is None else features
        self._last = None
        if x is None or x.shape[0] != len(positions):
            return  # the head saw another batch shape (e.g. a model with several heads): skip
        if self.table is None:
            self.table = torch.zeros(self.num_samples, x.shape[1], dtype=torch.float32, device=x.device)
            self.stamp = torch.full((self.num_samples,), -1, dtype=torch.long, device=x.device)
        assert self.stamp is not None
        positions = positions.to(x.device)
        if x.device.type == "cpu" and x.dtype == torch.float32 and self.table.device.type == "cpu":
            # The same row copies through numpy: torch's CPU index_put of rows is ~3x slower
            # (per element index arithmetic); with a repeated position the last row wins in both.
            rows = positions.numpy()
            self.table.numpy()[rows] = x.detach().numpy()
            self.stamp.numpy()[rows] = self.epoch
            return
        self.table[positions] = x.float()
        self.stamp[positions] = self.epoch

    def snapshot(self) -> None:
        if self.table is not None and self.stamp is not None:
            self.best, self.best_stamp = self.table.clone(), self.stamp.clone()

    def chosen(self) -> tuple[Tensor | None, Tensor | None]:
        """The snapshot (or the current table without one) and its stamps; Nones if never seen."""
        if self.best is not None:
            return self.best, self.best_stamp
        return self.table, self.stamp

    def features(self) -> np.ndarray | None:
        """``[num_samples, width]`` of :meth:`chosen`, on the host; None if never seen."""
        table, _ = self.chosen()
        return None if table is None else table.cpu().numpy()

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def state_dict(self) -> dict[str, Any]:
        return {k: None if v is None else v.cpu() for k, v in (
            ("table", self.table), ("best", self.best), ("stamp", self.stamp), ("best_stamp", self.best_stamp))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(iter(self.module.parameters())).device if self.module is not None and any(
            True for _ in self.module.parameters()) else torch.device("cpu")
        for key in ("table", "best", "stamp", "best_stamp"):
            setattr(self, key, None if state.get(key) is None else state[key].to(device))
