"""In-memory datasets whose items are ``(index, x, y)``.

Every sample carries its ``index`` - its row in the user's input (or its position in
the sorted file list of an image folder) - so per-sample bookkeeping downstream
(recorders, sample checks, repairs) never has to guess which sample it is looking at,
whatever the shuffling, the split or the subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from trainground.data.labels import LabelEncoder

DataKind = Literal["table", "image", "signal"]


@dataclass(frozen=True)
class IndexedDataset(torch.utils.data.Dataset):
    """Features, class ids and input row indices held as tensors.

    Args:
        features: ``[N, ...]`` float32 (``[N, F]`` for tables, ``[N, C, H, W]`` for images),
            or a store that decodes on indexing (``data.image_files.ImageFiles``: streamed
            image folders); ``features[positions]`` always gives a tensor.
        labels: ``[N]`` int64 class ids in ``[0, len(encoder.classes))``.
        index: ``[N]`` int64, the row of each sample in the input.
        encoder: maps class ids to the user's original label values and back.
        kind: ``"table"``, ``"image"`` or ``"signal"`` (a table whose features are one
            signal's samples in time order); decides the default model.
        name: where the data came from (a path or ``builtin:NAME``), for messages.
        schema: how raw input was turned into ``features`` (a ``TableSchema`` or an
            ``ImageSchema``), so the same encoding can be applied at prediction time.
        sources: optional per-sample description (file paths for image folders).
        unlabelled: ``[M, ...]`` features of input rows without a label (tables), not
            samples of this dataset: nothing trains on them; diagnosis predicts them.
        unlabelled_index: ``[M]`` int64, the row of each of those in the input.
    """

    features: Tensor
    labels: Tensor
    index: Tensor
    encoder: LabelEncoder
    kind: DataKind
    name: str
    schema: Any = None
    sources: tuple[str, ...] | None = field(default=None, repr=False)
    unlabelled: Tensor | None = field(default=None, repr=False)
    unlabelled_index: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if self.labels.shape != (n,) or self.index.shape != (n,):
            raise ValueError(
                f"features, labels and index disagree on the number of samples: "
                f"{tuple(self.features.shape)}, {tuple(self.labels.shape)}, {tuple(self.index.shape)}"
            )

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.index[i], self.features[i], self.labels[i]

    def get_batch(self, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Gather a batch by positions (not input indices) in one indexing op per tensor."""
        return self.index[positions], self.features[positions], self.labels[positions]

    @property
    def num_classes(self) -> int:
        return len(self.encoder.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.features.shape[1:])

    def subset(self, positions: Tensor | np.ndarray) -> IndexedDataset:
        """The samples at ``positions`` (positions in this dataset, not input indices)."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        sources = None if self.sources is None else tuple(self.sources[i] for i in pos.tolist())
        # a streamed feature store (``ImageFiles``) subsets lazily; indexing it would decode
        take = getattr(self.features, "take_rows", None)
        return replace(
            self,
            features=take(pos) if take is not None else self.features[pos],
            labels=self.labels[pos],
            index=self.index[pos],
            sources=sources,
        )

    def with_labels(self, labels: Tensor | np.ndarray) -> IndexedDataset:
        """The same samples with other class ids (e.g. after injecting label noise)."""
        new = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if new.shape != self.labels.shape:
            raise ValueError(f"expected {tuple(self.labels.shape)} labels, got {tuple(new.shape)}")
        if len(new) and (int(new.min()) < 0 or int(new.max()) >= self.num_classes):
            raise ValueError(f"labels must be class ids in [0, {self.num_classes})")
        return replace(self, labels=new)
