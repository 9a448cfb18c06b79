"""Labels of any type (strings, integers, booleans) mapped to class ids and back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def _python_scalar(value: Any) -> Any:
    """numpy scalars -> Python scalars, so classes survive a JSON round trip unchanged."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class LabelEncoder:
    """Class id ``i`` stands for ``classes[i]``; classes are sorted once, at fit time.

    Classes are plain Python values (str, int, float or bool) so the encoder can be
    stored as JSON next to a model and restored without pickling.
    """

    classes: tuple[Any, ...]

    @classmethod
    def fit(cls, values: Sequence[Any] | np.ndarray | pd.Series) -> LabelEncoder:
        uniques = pd.unique(pd.Series(values))
        try:
            ordered = sorted(uniques)
        except TypeError:  # mixed types (e.g. 1 and "a"): order by text, stably
            ordered = sorted(uniques, key=lambda v: (type(v).__name__, str(v)))
        return cls(tuple(_python_scalar(v) for v in ordered))

    def encode(self, values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
        """Class ids for ``values`` (one vectorised lookup); raises ``KeyError`` naming the first unknown value."""
        series = pd.Series(values, dtype=object).reset_index(drop=True)
        try:
            out = pd.Index(self.classes, dtype=object).get_indexer(series).astype(np.int64)
        except pd.errors.InvalidIndexError:  # classes equal as Python values (1 and True): look up one by one
            lookup = {v: i for i, v in enumerate(self.classes)}
            out = np.array([lookup.get(_python_scalar(v), -1) for v in series.tolist()], dtype=np.int64)
        unknown = np.flatnonzero(out < 0)
        if len(unknown):
            row = int(unknown[0])
            raise KeyError(f"label {series.iloc[row]!r} (row {row}) is not one of the known classes")
        return out

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[Any]:
        """Original label values for class ids."""
        return [self.classes[int(i)] for i in np.asarray(ids).reshape(-1)]

    def to_json(self) -> list[Any]:
        return list(self.classes)

    @classmethod
    def from_json(cls, classes: list[Any]) -> LabelEncoder:
        return cls(tuple(classes))
