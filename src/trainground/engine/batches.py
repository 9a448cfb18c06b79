"""Batches of ``(index, x, y)`` from an IndexedDataset or any map-style dataset."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate


class BatchSource:
    """Uniform batch access: ``IndexedDataset.get_batch`` when the dataset has it (one
    gather per tensor), else ``dataset[i]`` per item and ``default_collate``.

    Items must be ``(index, x, y)``; the index is what per-sample bookkeeping keys on.
    """

    def __init__(self, dataset: Dataset, positions: np.ndarray | None = None) -> None:
        self.dataset = dataset
        self.positions = None if positions is None else torch.as_tensor(positions, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.positions) if self.positions is not None else len(self.dataset)  # type: ignore[arg-type]

    def batch(self, rows: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor, Tensor]:
        """Rows are positions in this source (0..len-1), mapped to the dataset's positions."""
        pos = rows if self.positions is None else self.positions[rows]
        if hasattr(self.dataset, "get_batch"):
            index, x, y = self.dataset.get_batch(pos)
        else:
            index, x, y = default_collate([self.dataset[i] for i in pos.tolist()])
        non_blocking = torch.device(device).type == "cuda"
        return (
            torch.as_tensor(index).to(device, non_blocking=non_blocking),
            x.to(device, non_blocking=non_blocking),
            torch.as_tensor(y).to(device, non_blocking=non_blocking),
        )

    def labels(self) -> np.ndarray | None:
        """Class ids without loading features, when the dataset exposes ``labels``."""
        labels = getattr(self.dataset, "labels", None)
        if labels is None:
            return None
        labels = np.asarray(labels)
        return labels if self.positions is None else labels[self.positions.numpy()]
