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

    @torch.no_grad()
    def write(self, positions: Tensor) -> None:
        """Store the last forward's features at ``positions`` (``[B]``, same order as the batch)."""
        x = self._last
        if x is None or x.shape[0] != len(positions):
            return  # the head saw another batch shape (e.g. a model with several heads): skip
        if self.table is None:
            self.table = torch.zeros(self.num_samples, x.shape[1], dtype=torch.float32, device=x.device)
        self.table[positions.to(x.device)] = x.float()
        self._last = None

    def snapshot(self) -> None:
        if self.table is not None:
            self.best = self.table.clone()

    def features(self) -> np.ndarray | None:
        """``[num_samples, width]``: the snapshot (or the current table without one); None if never seen."""
        chosen = self.best if self.best is not None else self.table
        return None if chosen is None else chosen.cpu().numpy()

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def state_dict(self) -> dict[str, Any]:
        return {"table": None if self.table is None else self.table.cpu(),
                "best": None if self.best is None else self.best.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(iter(self.module.parameters())).device if self.module is not None and any(
            True for _ in self.module.parameters()) else torch.device("cpu")
        self.table = None if state.get("table") is None else state["table"].to(device)
        self.best = None if state.get("best") is None else state["best"].to(device)
