"""Small datasets that ship with trainground's dependencies, named ``builtin:NAME``.

Each is a table with numeric features and a ``label`` column, built offline. Adding
one is one function returning that frame, plus its entry in ``_FRAMES``. Datasets whose
features are one signal (time samples in order) are listed in ``SIGNALS``: they load as
kind ``"signal"``, for which the default model is the 1-D CNN.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable

import numpy as np
import pandas as pd

from trainground.data.dataset import IndexedDataset
from trainground.data.faults import FAULT_TYPES, make_faults
from trainground.data.products import products_dataset
from trainground.data.table import frame_to_dataset
from trainground.data.tasks import MultiTargetDataset
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


def _faults() -> pd.DataFrame:
    """Synthetic machine vibration (:func:`trainground.data.faults.make_faults`, seed 0): 6000 rows,
    ``x_0..x_1023`` (0.25 s at 4096 Hz), ``label`` the fault type (12 names, 40 % healthy),
    ``severity`` 0..5 (not a feature: kept for multi-task use, ignored when loading)."""
    data = make_faults(6000, seed=0)
    frame = pd.DataFrame(data.signals, columns=[f"x_{i}" for i in range(data.signals.shape[1])])
    frame["severity"] = data.severity
    frame[TARGET] = np.asarray(FAULT_TYPES, dtype=object)[data.fault]
    return frame


_FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "digits": _digits,
    "faults": _faults,
    "mnist1d": _mnist1d,
}
# Datasets whose features are one ordered signal (the default model convolves along it).
SIGNALS = frozenset({"faults", "mnist1d"})
# Columns of a builtin frame that are labels of other tasks, not features.
_NOT_FEATURES = {"faults": ("severity",)}
# Task names of the label column in multi-target use (``--target fault,severity``).
_LABEL_NAMES = {"faults": "fault"}


def builtin_label_name(name: str) -> str:
    """What :func:`builtin_multitarget_frame` calls the ``label`` column of ``name``."""
    return _LABEL_NAMES.get(name.removeprefix(PREFIX), TARGET)


def builtin_multitarget_frame(name: str) -> tuple[pd.DataFrame, tuple[str, ...], str]:
    """The named dataset for multi-target loading: the frame (its ``label`` column renamed to
    the task's name, e.g. ``fault``), the columns that are never features, and its kind."""
    name = name.removeprefix(PREFIX)
    frame = builtin_frame(name)
    label = _LABEL_NAMES.get(name, TARGET)
    if label != TARGET:
        frame = frame.rename(columns={TARGET: label})
    return frame, _NOT_FEATURES.get(name, ()), "signal" if name in SIGNALS else "table"


# Builtins that are not tables: multi-target datasets (a dict of inputs, targets of several
# kinds) made by a function of (samples, seed).
_MULTITARGET: dict[str, Callable[..., MultiTargetDataset]] = {"products": products_dataset}


def load_builtin_multitarget(name: str, *, samples: int = 2000, seed: int = 0) -> MultiTargetDataset:
    """A generated multi-target builtin (``builtin:products``: image + review text -> score, boxes).

    Args:
        name: ``products`` (``"builtin:"`` prefix allowed).
        samples: how many samples to generate.
        seed: the generator's seed (another seed = another draw of every randomised factor).
    """
    name = name.removeprefix(PREFIX)
    if name not in _MULTITARGET:
        raise DataError(f"unknown multi-target builtin dataset {name!r}; known: {', '.join(_MULTITARGET)}")
    return _MULTITARGET[name](samples, seed)


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
        A ``"table"`` dataset (``"signal"`` for the names in ``SIGNALS``) named ``builtin:NAME``
        with a ``TableSchema`` of numeric features.
    """
    name = name.removeprefix(PREFIX)
    if name in _MULTITARGET:
        raise DataError(f"builtin:{name} is a multi-target image + text dataset, not a table: use "
                        f"`trainground recipe fusion`, or trainground.data.load_builtin_multitarget({name!r})")
    data = frame_to_dataset(builtin_frame(name), target=TARGET, source=PREFIX + name,
                            ignore=_NOT_FEATURES.get(name, ()))
    return dataclasses.replace(data, kind="signal") if name in SIGNALS else data
