"""Batches of ``(index, x, y)`` from an IndexedDataset or any map-style dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset, default_collate

from trainground.errors import DataError


class BatchSource:
    """Uniform batch access: ``IndexedDataset.get_batch`` when the dataset has it (one
    gather per tensor), a ``TensorDataset`` by one gather per tensor too, else
    ``dataset[i]`` per item and ``default_collate``.

    Items are ``(index, x, y)``, the index being what per-sample bookkeeping keys on, or
    ``(x, y)`` (e.g. ``TensorDataset(X, y)``), whose index is then the item's position in
    the dataset. Anything else is a :class:`~trainground.errors.DataError`.
    """

    def __init__(self, dataset: Dataset, positions: np.ndarray | None = None) -> None:
        self.dataset = dataset
        self.positions = None if positions is None else torch.as_tensor(positions, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.positions) if self.positions is not None else len(self.dataset)  # type: ignore[arg-type]

    def batch(self, rows: Tensor, device: torch.device | str) -> tuple[Tensor, Any, Any]:
        """Rows are positions in this source (0..len-1), mapped to the dataset's positions.

        ``x`` and ``y`` may be tensors or (nested) dicts of tensors (several inputs, several
        targets): every tensor is moved to ``device``."""
        pos = rows if self.positions is None else self.positions[rows]
        if hasattr(self.dataset, "get_batch"):
            index, x, y = self.dataset.get_batch(pos)
        elif isinstance(self.dataset, TensorDataset):
            index, x, y = _triple([t[pos] for t in self.dataset.tensors], pos)
        else:
            index, x, y = _triple(default_collate([self.dataset[i] for i in pos.tolist()]), pos)
        non_blocking = torch.device(device).type == "cuda"
        return (
            torch.as_tensor(index).to(device, non_blocking=non_blocking),
            to_device(x, device, non_blocking=non_blocking),
            to_device(y, device, non_blocking=non_blocking, as_tensor=True),
        )

    def labels(self) -> np.ndarray | None:
        """Class ids without loading features, when the dataset exposes ``labels`` (or is a TensorDataset)."""
        labels = getattr(self.dataset, "labels", None)
        if labels is None and isinstance(self.dataset, TensorDataset) and len(self.dataset.tensors) in (2, 3):
            labels = self.dataset.tensors[-1]
        if labels is None:
            return None
        labels = np.asarray(labels)
        return labels if self.positions is None else labels[self.positions.numpy()]


def to_device(value: Any, device: torch.device | str, *, non_blocking: bool = False, as_tensor: bool = False) -> Any:
    """``value`` on ``device``: a tensor, or every tensor of a (nested) dict, list or tuple.

    ``as_tensor`` (targets): a leaf that is not a mapping becomes a tensor first, as the
    single-target ``y`` always did."""
    if isinstance(value, Mapping):
        return {k: to_device(v, device, non_blocking=non_blocking, as_tensor=as_tensor) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not as_tensor:
        return type(value)(to_device(v, device, non_blocking=non_blocking) for v in value)
    if as_tensor:
        value = torch.as_tensor(value)
    if not isinstance(value, Tensor):  # a string or number beside the tensors stays as it is
        return value
    return value.to(device, non_blocking=non_blocking)


def _triple(parts: Any, positions: Tensor) -> tuple[Any, Any, Any]:
    """``(index, x, y)`` from a collated item: ``(index, x, y)`` as is, ``(x, y)`` indexed by position."""
    if isinstance(parts, Sequence) and not isinstance(parts, (str, bytes)):
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        if len(parts) == 2:
            return positions.clone(), parts[0], parts[1]
        what = f"a sequence of {len(parts)}"
    else:
        what = f"a {type(parts).__name__}"
    raise DataError(
        f"fit: each item of the dataset must be (x, y) or (index, x, y); its items are {what}. "
        "Wrap your data in a dataset whose __getitem__ returns (x, y), e.g. torch.utils.data.TensorDataset(X, y)"
    )
