"""LabelEncoder: sorted classes, encode/decode, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trainground.data.labels import LabelEncoder


@pytest.mark.parametrize(
    "values",
    [
        ["b", "a", "c", "a"],
        [3, 1, 2, 3],
        np.array([3, 1, 2, 3], dtype=np.int64),
        [0.5, -1.0, 0.5],
        [True, False, True],
        pd.Series(["x", "y", "x"], dtype="str"),
    ],
)
def test_round_trip_through_json(values) -> None:
    encoder = LabelEncoder.fit(values)
    ids = encoder.encode(values)
    assert ids.dtype == np.int64 and list(encoder.classes) == sorted(set(pd.Series(values).tolist()))
    restored = LabelEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    assert restored == encoder
    assert restored.decode(ids) == pd.Series(values).tolist()


def test_classes_are_python_scalars() -> None:
    encoder = LabelEncoder.fit(np.array([2, 1], dtype=np.int32))
    assert encoder.classes == (1, 2) and all(type(c) is int for c in encoder.classes)


def test_mixed_types_get_a_stable_order() -> None:
    encoder = LabelEncoder.fit([1, "a", 2])
    assert encoder.classes == (1, 2, "a")


def test_unknown_label_is_named() -> None:
    with pytest.raises(KeyError, match="'z'"):
        LabelEncoder.fit(["a", "b"]).encode(["a", "z"])
