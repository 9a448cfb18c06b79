"""``WithIndex``: any map-style dataset of ``(x, y)`` made to yield ``(index, x, y)``."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset


class WithIndex(Dataset):
    """Wraps a dataset whose items are ``(x, y)`` so each item also carries its position.

    The position in ``dataset`` (plus ``offset``) is the sample's index: ``sample_issues.csv``'s ``index``
    column points back at ``dataset[index - offset]``. Items that are dicts (the transformers
    convention) get a ``"sample_index"`` key instead of a tuple.

    Args:
        dataset: a map-style dataset (``len`` and ``__getitem__`` by position).
        offset: added to every position, so two wrapped datasets (training and
            validation) never share an index: ``WithIndex(val, offset=len(train))``.
    """

    def __init__(self, dataset: Dataset, *, offset: int = 0) -> None:
        self.dataset = dataset
        self.offset = int(offset)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        item = self.dataset[i]
        if isinstance(item, dict):
            return {**item, "sample_index": i + self.offset}
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"WithIndex expects items (x, y) or dicts; item {i} is {type(item).__name__}"
                            f"{f' of length {len(item)}' if isinstance(item, tuple | list) else ''}")
        return torch.tensor(i + self.offset), item[0], item[1]
