"""Small datasets that ship with trainground's dependencies, named ``builtin:NAME``.

Each is a table with numeric features and a ``label`` column, built offline. Adding
one is one function returning that frame, plus its entry in ``_FRAMES``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import numpy as np
import pandas as pd

from trainground.data.dataset import IndexedDataset
from trainground.data.table import frame_to_dataset
from trainground.errors import DataError

TARGET = "label"
PREFIX = "builtin:"


def _digits() -> pd.DataFrame:
    """scikit-learn's 8x8 digits: 1797 rows, ``pixel_0..pixel_63`` in 0..16, labels 0..9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(
        digits.data.astype(np.float32), columns=[f"pixel_{i}" for i in range(digits.data.shape[1])]
    )
    frame[TARGET] = digits.target.astype(np.int64)
    return frame


def _mnist1d() -> pd.DataFrame:
    """MNIST-1D (Greydanus, 2020): 5000 rows, ``x_0..x_39``, labels 0..9; train part first."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise DataError(
            f"builtin:mnist1d needs the mnist1d package ({err}); pip install 'trainground[mnist1d]'"
        ) from None
    # make_dataset reseeds the global random and numpy generators; put them back so
    # loading data does not change what the rest of the program draws
    saved = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    frame = pd.DataFrame(x, columns=[f"x_{i}" for i in range(x.shape[1])])
    frame[TARGET] = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return frame


_FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
}


def builtin_names() -> tuple[str, ...]:
    """Names accepted after ``builtin:``."""
    return tuple(_FRAMES)


@functools.cache
def _cached_frame(name: str) -> pd.DataFrame:
    # mnist1d takes seconds to generate; training and prediction in one process reuse it
    return _FRAMES[name]()


def builtin_frame(name: str) -> pd.DataFrame:
    """The named dataset as a table: feature columns then a ``label`` column.

    Args:
        name: a name from :func:`builtin_names` (``"builtin:"`` prefix allowed).

    Returns:
        A fresh copy the caller may modify.
    """
    name = name.removeprefix(PREFIX)
    if name not in _FRAMES:
        raise DataError(f"unknown builtin dataset {name!r}; known: {', '.join(_FRAMES)}")
    return _cached_frame(name).copy()


def load_builtin(name: str) -> IndexedDataset:
    """The named dataset, encoded like a table with target ``label``.

    Args:
        name: a name from :func:`builtin_names` (``"builtin:"`` prefix allowed).

    Returns:
        A ``"table"`` dataset named ``builtin:NAME`` with a ``TableSchema`` of numeric features.
    """
    name = name.removeprefix(PREFIX)
    return frame_to_dataset(builtin_frame(name), target=TARGET, source=PREFIX + name)
