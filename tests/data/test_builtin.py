"""Builtin datasets: shapes, classes, schema, and the frame used at prediction time."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from trainground.data.builtin import builtin_frame, builtin_names, load_builtin
from trainground.data.table import TableSchema, encode_table
from trainground.errors import DataError


def test_digits() -> None:
    ds = load_builtin("digits")
    assert ds.kind == "table" and ds.name == "builtin:digits"
    assert ds.features.shape == (1797, 64) and ds.features.dtype == torch.float32
    assert float(ds.features.min()) == 0.0 and float(ds.features.max()) == 16.0
    assert ds.encoder.classes == tuple(range(10))
    assert ds.index.tolist() == list(range(1797))
    schema = ds.schema
    assert isinstance(schema, TableSchema) and schema.target == "label"
    assert schema.columns[0] == "pixel_0" and schema.columns[-1] == "pixel_63" and not schema.categories


def test_builtin_prefix_is_accepted() -> None:
    assert load_builtin("builtin:digits").name == "builtin:digits"


def test_builtin_frame_reencodes_to_the_same_features() -> None:
    ds = load_builtin("digits")
    frame = builtin_frame("digits")
    assert list(frame.columns[-1:]) == ["label"]
    assert torch.equal(encode_table(frame, ds.schema, source="builtin:digits"), ds.features)
    frame.iloc[0, 0] = -1.0  # a copy: the cached frame is not changed
    assert builtin_frame("digits").iloc[0, 0] == 0.0


def test_mnist1d_keeps_global_random_state() -> None:
    pytest.importorskip("mnist1d")
    np.random.seed(123)
    random.seed(123)
    expected = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    ds = load_builtin("mnist1d")
    assert (np.random.rand(), random.random()) == expected
    assert ds.features.shape == (5000, 40) and ds.num_classes == 10
    assert ds.schema.columns[:2] == ("x_0", "x_1") and ds.schema.target == "label"


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(DataError) as info:
        load_builtin("cifar")
    assert "'cifar'" in str(info.value) and "digits" in str(info.value) and "mnist1d" in str(info.value)
    assert set(builtin_names()) >= {"digits", "mnist1d"}
