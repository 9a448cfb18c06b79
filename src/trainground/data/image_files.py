"""Image files decoded per batch: the features of a large image folder, never all in memory.

:class:`ImageFiles` stands where an ``[N, C, H, W]`` float32 tensor stands in an
:class:`~trainground.data.dataset.IndexedDataset`: indexing it (``files[positions]``,
``files[a:b]``) decodes just those images, ``split(chunk)`` walks it in decoded chunks
(prediction, embeddings), and ``take_rows(positions)`` is a lazy subset (train / validation
splits). Memory is then the batch being decoded plus one path per sample, whatever N.

Code that needs every pixel at once (``numpy()``, ``reshape``) still works, by decoding
everything: a cost it pays knowingly, at the size the eager loader would have used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainground.data.images import ImageSchema, read_images
from trainground.errors import DataError

# Decoded images held at once when walking the files in chunks (split, statistics).
CHUNK = 1024


class ImageFiles:
    """A read-only ``[N, C, H, W]`` float32 feature store backed by image files.

    Args:
        files: one path per sample, in sample order.
        schema: size and mode every image is converted to (as the eager loader does).
        workers: decode a batch in this many threads (Pillow releases the GIL while it
            decodes); 0 decodes in the calling thread.
    """

    def __init__(self, files: Sequence[str | Path], schema: ImageSchema, *, workers: int = 0) -> None:
        # One numpy array of strings, not N Path objects: ~100 bytes per sample.
        self.files = np.asarray([str(f) for f in files])
        self.schema = schema
        self.workers = workers

    # -- the tensor-like surface IndexedDataset and the engine use --------------------
    @property
    def shape(self) -> torch.Size:
        s = self.schema
        return torch.Size((len(self.files), s.channels, s.height, s.width))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Any) -> Tensor:
        """Decode the selected images: an int gives ``[C, H, W]``, anything else ``[n, C, H, W]``;
        a tuple key selects rows with its first part and indexes the decoded block with the rest."""
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])]
        if isinstance(key, (int, np.integer)):
            return self._decode(self.files[[int(key)]])[0]
        return self._decode(self.files[self._positions(key)])

    def take_rows(self, positions: Tensor | np.ndarray | Sequence[int]) -> ImageFiles:
        """The images at ``positions``, still undecoded."""
        return ImageFiles(self.files[self._positions(positions)], self.schema, workers=self.workers)

    def split(self, chunk: int = CHUNK) -> Iterator[Tensor]:
        """Decoded consecutive chunks of at most ``chunk`` images (as ``Tensor.split``)."""
        for start in range(0, len(self), chunk):
            yield self._decode(self.files[start:start + chunk])

    def numpy(self) -> np.ndarray:
        """Every image decoded into one array (memory N x C x H x W x 4 bytes)."""
        return self.materialize().numpy()

    def materialize(self) -> Tensor:
        """Every image decoded into one tensor, chunk by chunk."""
        out = torch.empty(tuple(self.shape), dtype=torch.float32)
        for start in range(0, len(self), CHUNK):
            out[start:start + CHUNK] = self._decode(self.files[start:start + CHUNK])
        return out

    def reshape(self, *shape: Any) -> Tensor:
        return self.materialize().reshape(*shape)

    # -- internals --------------------------------------------------------------------
    def _positions(self, key: Any) -> Any:
        if isinstance(key, slice):
            return key
        if isinstance(key, Tensor):
            key = key.cpu().numpy()
        key = np.asarray(key)
        return key if key.dtype == bool else key.astype(np.int64, copy=False)

    def _decode(self, files: np.ndarray) -> Tensor:
        paths = [Path(f) for f in files]
        if self.workers <= 0 or len(paths) < 2 * self.workers:
            out = read_images(paths, self.schema)
        else:
            parts = np.array_split(np.arange(len(paths)), self.workers)
            with ThreadPoolExecutor(self.workers) as pool:
                out = torch.cat(list(pool.map(lambda part: read_images([paths[i] for i in part], self.schema), parts)))
        # the eager path scans all features once (diagnosis.dataset.validate_for_diagnosis);
        # here each batch is scanned as it is decoded (only float images can hold NaN)
        bad = ~torch.isfinite(out.reshape(len(out), -1)).all(dim=1)
        if bad.any():
            raise DataError(f"{paths[int(bad.nonzero()[0])]}: the image holds NaN or infinite values")
        return out

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files, {self.schema.mode} {self.schema.height}x{self.schema.width})"
