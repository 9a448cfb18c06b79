"""Everything a check may read, gathered in one object; a check declares which fields it needs."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from trainground.diagnosis.neighbor_cache import NeighborCache


def _neighbor_cache() -> NeighborCache:
    from trainground.diagnosis.neighbor_cache import NeighborCache

    return NeighborCache()


@dataclass
class Evidence:
    """Inputs of the checks. Every field is optional; a check whose ``requires`` names a
    field that is None is skipped (and says so), never run on half its evidence.

    Attributes:
        steps: per-step scalars of the run (``metrics.jsonl`` records of kind ``step``):
            columns ``step`` and whatever was logged (loss, lr, grad_norm, ...).
        epochs: per-epoch metrics (``train_loss``, ``train_accuracy``, ``val_loss``, ...).
        layers: per-layer statistics over time (``layers.parquet``).
        samples: per-sample learning curves (``samples.parquet``).
        train, val, test: the datasets (``IndexedDataset``) of the run's splits.
        model: the trained model.
        pred_probs: ``[N, K]`` class probabilities of the samples of ``train`` (same row
            order) obtained before the model memorised them (the early-learning average of
            ``diagnosis.early_learning``), for the sample checks.
        embeddings: ``[N, D]`` learned representation of the samples of ``train`` (same
            row order), for neighbour-based sample checks.
        extra: anything else a check needs and no field names yet (keyed by check name).
        neighbors: the neighbour searches of this diagnosis, each run once and shared by
            the checks that search the same points (``diagnosis.neighbor_cache``); not
            evidence a check can require.
    """

    steps: pd.DataFrame | None = None
    epochs: pd.DataFrame | None = None
    layers: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None
    train: Any = None
    val: Any = None
    test: Any = None
    model: Any = None
    pred_probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    neighbors: NeighborCache = field(default_factory=_neighbor_cache, repr=False, compare=False)

    def available(self) -> set[str]:
        """Names of the fields that hold something."""
        return {f.name for f in fields(self) if f.name not in ("extra", "neighbors") and getattr(self, f.name) is not None}
