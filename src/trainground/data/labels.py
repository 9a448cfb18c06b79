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
        """Class ids for ``values``; raises ``KeyError`` naming the first unknown value."""
        lookup = {v: i for i, v in enumerate(self.classes)}
        out = np.empty(len(values), dtype=np.int64)
        for row, value in enumerate(pd.Series(values).tolist()):
            try:
                out[row] = lookup[_python_scalar(value)]
            except KeyError:
                raise KeyError(f"label {value!r} (row {row}) is not one of the known classes") from None
        return out

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[Any]:
        """Original label values for class ids."""
        return [self.classes[int(i)] for i in np.asarray(ids).reshape(-1)]

    def to_json(self) -> list[Any]:
        return list(self.classes)

    @classmethod
    def from_json(cls, classes: list[Any]) -> LabelEncoder:
        return cls(tuple(classes))
