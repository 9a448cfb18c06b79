"""Every sample's penultimate features, captured from the forward passes the loop makes anyway."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainground.monitors.representation import penultimate_module


class _Rows:
    """A table as a base (a materialised table, or zeros when None) plus the row writes made
    since, in order, held as references to the batches' tensors (no copy)."""

    __slots__ = ("base", "count", "owned", "writes")

    def __init__(self, base: Tensor | None = None, owned: bool = True,
                 writes: list[tuple[Tensor, Tensor]] | None = None, count: int | None = None) -> None:
        self.base, self.owned = base, owned  # owned: no other view shares ``base`` (may be written in place)
        self.writes = [] if writes is None else writes
        self.count = sum(int(p.shape[0]) for p, _ in self.writes) if count is None else count


class PenultimateFeatures:
    """Keeps, for each of ``num_samples`` samples, the input of the model's head at its last forward.

    The head is ``model.head`` or the last ``nn.Linear`` (:func:`penultimate_module`), or
    the module given; a forward pre-hook keeps a detached reference to its input (no copy,
    no extra forward pass) and :meth:`write` files it under the batch's sample positions
    once the loop knows them. :meth:`snapshot` keeps the current table (the diagnosis
    snapshots it at the epoch of lowest validation loss, beside the early-learning
    probabilities), and that snapshot is the only table the diagnosis reads. Which epoch
    that is is known only after the epoch, so the rows are not copied as they come: each
    view (current, snapshot) is a base table plus the batches written since, held by
    reference, and a table is built only when one is read (:attr:`table`, :attr:`best`,
    :meth:`chosen`, a checkpoint). An epoch that rewrote every row seen so far drops what
    came before it, so on full epochs the current view holds about two epochs of head
    inputs and a snapshot one (shared when it is one of those), and nothing is copied
    during training; past ``2 * num_samples`` held rows (epochs that skip samples) the
    view is built into its table.
    Memory: about two ``num_samples x width`` tables' worth per view, on the device.
    The per-row stamps are kept as the writes come.

    Args:
        model: the network.
        num_samples: positions run from 0 to ``num_samples - 1``.
        module: the layer whose input is the representation; found automatically when None.
    """

    def __init__(self, model: nn.Module, num_samples: int, *, module: nn.Module | None = None) -> None:
        found = penultimate_module(model) if module is None else ("", module)
        self.module = None if found is None else found[1]
        self.num_samples = int(num_samples)
        # Epoch at which each row was last written (-1: never): a distributed run keeps, per
        # sample, the row of the rank that saw it last.
        self.epoch = 0
        self.stamp: Tensor | None = None
        self.best_stamp: Tensor | None = None
        self._cur = _Rows()
        self._best: _Rows | None = None
        self._width = 0
        self._device = torch.device("cpu")
        self._open_epoch: int | None = None  # the epoch of the last write
        self._epoch_start: int | None = 0  # where that epoch's writes start in _cur.writes (None: partly built)
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

    @property
    def table(self) -> Tensor | None:
        """``[num_samples, width]``: every row as last written (built now); None if never written."""
        return self._build(self._cur)

    @property
    def best(self) -> Tensor | None:
        """The table at the last :meth:`snapshot` (built now), or None."""
        return None if self._best is None else self._build(self._best)

    @best.setter
    def best(self, value: Tensor | None) -> None:
        self._best = None if value is None else _Rows(value)

    @torch.no_grad()
    def write(self, positions: Tensor, features: Tensor | None = None) -> None:
        """File ``features`` (default: the last forward's) under ``positions`` (``[B]``, same order)."""
        x = self._last if features is None else features
        self._last = None
        if x is None or x.shape[0] != len(positions):
            return  # the head saw another batch shape (e.g. a model with several heads): skip
        self.write_many([(positions, x)])

    @torch.no_grad()
    def write_many(self, batches: list[tuple[Tensor, Tensor]]) -> None:
        """File several batches ``(positions [B], features [B, D])`` in order, as :meth:`write`
        does one by one (the same table), with one stamp write for all of them (a session files
        an epoch's batches at once)."""
        if not batches:
            return
        first = batches[0][1]
        if self.stamp is None:
            self.stamp = torch.full((self.num_samples,), -1, dtype=torch.long, device=first.device)
            self._width, self._device = int(first.shape[1]), first.device
        if self._open_epoch != self.epoch:
            self._new_epoch()
        held = []
        for positions, x in batches:
            x = x.detach()
            if x.untyped_storage().nbytes() > 2 * x.numel() * x.element_size():
                x = x.clone()  # a slice of a larger activation: hold the rows, not the whole activation
            held.append((positions.to(x.device), x))
        if all(x.device.type == "cpu" and x.device == self.stamp.device for _, x in held):
            # Every row gets the same stamp, so one scatter of all positions is the same as one per batch.
            flat = held[0][0] if len(held) == 1 else torch.cat([p.reshape(-1) for p, _ in held])
            self.stamp.numpy()[flat.numpy()] = self.epoch
        else:
            for positions, _ in held:
                self.stamp[positions.to(self.stamp.device)] = self.epoch
        self._cur.writes.extend(held)
        self._cur.count += sum(int(p.shape[0]) for p, _ in held)
        if self._cur.count > 2 * self.num_samples:  # epochs that skip samples: bound what is held
            self._build(self._cur)

    def _new_epoch(self) -> None:
        previous, self._open_epoch = self._open_epoch, self.epoch
        assert self.stamp is not None
        # The previous epoch rewrote every row ever written: nothing before it can show
        # (one host read per epoch).
        if previous is not None and self._epoch_start is not None and \
                int((self.stamp == previous).sum()) == int((self.stamp >= 0).sum()):
            self._cur = _Rows(None, True, self._cur.writes[self._epoch_start:])
        self._epoch_start = len(self._cur.writes)

    def _build(self, rows: _Rows) -> Tensor | None:
        """The view's table (its base with its writes applied, in order); the view keeps it as its base."""
        if not rows.writes:
            return rows.base
        if rows.base is None:
            table = torch.zeros(self.num_samples, self._width, dtype=torch.float32, device=self._device)
        else:
            table = rows.base if rows.owned else rows.base.clone()
        for positions, x in rows.writes:
            if x.device.type == "cpu" and x.dtype == torch.float32 and table.device.type == "cpu":
                # The same row copies through numpy: torch's CPU index_put of rows is ~3x slower
                # (per element index arithmetic); with a repeated position the last row wins in both.
                table.numpy()[positions.numpy()] = x.numpy()
            else:
                table[positions] = x.float()
        rows.base, rows.owned, rows.writes, rows.count = table, True, [], 0
        if rows is self._cur:
            self._epoch_start = None  # the open epoch's rows are in the base now: it cannot replace it
        return table

    def snapshot(self) -> None:
        """Keep the current view as the snapshot (references: nothing is copied now)."""
        if self.stamp is None:
            return
        self._best = _Rows(self._cur.base, False, list(self._cur.writes), self._cur.count)
        self._cur.owned = False
        self.best_stamp = self.stamp.clone()

    def chosen(self) -> tuple[Tensor | None, Tensor | None]:
        """The snapshot (or the current table without one) and its stamps; Nones if never seen."""
        if self._best is not None:
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
        loaded = {key: None if state.get(key) is None else state[key].to(device)
                  for key in ("table", "best", "stamp", "best_stamp")}
        self._cur = _Rows(loaded["table"])
        self._best = None if loaded["best"] is None else _Rows(loaded["best"])
        self.stamp, self.best_stamp = loaded["stamp"], loaded["best_stamp"]
        if loaded["table"] is not None:
            self._width, self._device = int(loaded["table"].shape[1]), device
        self._open_epoch, self._epoch_start = None, 0
