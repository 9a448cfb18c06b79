"""Property tests: generated malformed tables and configs give a usable result or one of our errors.

Whatever the bytes, the loaders either return finite float32 features with one label per row,
or raise a :class:`TraingroundError` (``DataError``/``ConfigError``) with a one-line message:
never another exception. Derandomized and small, so the suite stays fast and deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainground.data import load_data
from trainground.engine import RunConfig
from trainground.engine.config_io import read_yaml
from trainground.errors import TraingroundError

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NAMES = st.sampled_from(["f1", "f2", "y", "Y", "", " y", "f1", "é", "a,b", '"q"'])
CELLS = st.one_of(
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e39", "1e308", "-1e400", "0", "1", "2.5", "a", "b", "c",
                     "True", "  ", '"x,y"', "\x00", "1,5", "０"]),
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


def _accepts(data) -> None:
    """A dataset the loader returned is one the model can use."""
    assert data.features.dtype == torch.float32
    assert bool(torch.isfinite(data.features).all())
    assert len(data.labels) == len(data.features) and data.num_classes >= 2


def _one_line(err: TraingroundError) -> None:
    assert str(err) and "Traceback" not in str(err)


@SETTINGS
@given(header=st.lists(NAMES, min_size=1, max_size=4),
       rows=st.lists(st.lists(CELLS, min_size=0, max_size=5), min_size=0, max_size=12))
def test_generated_csv_loads_or_says_why(tmp_path, header, rows):
    path = tmp_path / "t.csv"
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n", encoding="utf-8")
    try:
        _accepts(load_data(str(path), target="y"))
    except TraingroundError as err:
        _one_line(err)


NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
                   st.integers(-1000, 1000).map(str))


@SETTINGS
@given(features=st.integers(1, 3), data=st.data())
def test_nearly_valid_csv_loads_or_says_why(tmp_path, features, data):
    """A well-formed table, then zero to two cells replaced by anything (out of range, missing, text)."""
    n = data.draw(st.integers(4, 10))
    names = [f"f{j}" for j in range(features)] + ["y"]
    rows = [[data.draw(NUMBER) for _ in range(features)] + ["ab"[i % 2]] for i in range(n)]
    for _ in range(data.draw(st.integers(0, 2))):
        i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, features))
        rows[i][j] = data.draw(CELLS)
    path = tmp_path / "t.csv"
    pd.DataFrame(rows, columns=names).to_csv(path, index=False)
    try:
        _accepts(load_data(str(path), target="y"))
    except TraingroundError as err:
        _one_line(err)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_as_csv_or_parquet(tmp_path, raw):
    for name in ("t.csv", "t.parquet"):
        path = tmp_path / name
        path.write_bytes(raw)
        try:
            _accepts(load_data(str(path), target="y"))
        except TraingroundError as err:
            _one_line(err)


ODD_VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.integers(-2**62, 2**62),
                      st.sampled_from(["a", "", "1e39"]), st.booleans())


@SETTINGS
@given(n=st.integers(4, 10), data=st.data())
def test_nearly_valid_parquet_loads_or_says_why(tmp_path, n, data):
    """A well-formed Parquet table, then up to two values of one column replaced by anything."""
    frame = pd.DataFrame({"f1": np.arange(n, dtype=float), "f2": np.arange(n) % 3, "y": ["a", "b"] * (n // 2)
                          + ["a"] * (n % 2)})
    column = data.draw(st.sampled_from(["f1", "f2", "y"]))
    values = frame[column].astype(object).tolist()
    for _ in range(data.draw(st.integers(0, 2))):
        values[data.draw(st.integers(0, n - 1))] = data.draw(ODD_VALUE)
    frame[column] = values
    try:
        frame.to_parquet(tmp_path / "t.parquet")
    except Exception:  # noqa: BLE001 - a column pyarrow itself cannot store is not an input case
        return
    try:
        _accepts(load_data(str(tmp_path / "t.parquet"), target="y"))
    except TraingroundError as err:
        _one_line(err)


SECTIONS = {
    "data": ["source", "target", "image_size", "max_categories", "test_fraction", "noise"],
    "model": ["name", "hidden", "channels", "dropout"],
    "fit": ["epochs", "batch_size", "lr", "optimizer", "momentum", "val_fraction", "threads", "seed", "device"],
    "loss": ["name", "weighting", "beta", "gamma", "label_smoothing"],
    "guard": ["amp", "accumulation", "spike_z", "percentile", "max_norm", "rollback_trust"],
    "logging": ["tensorboard", "mlflow"],
}
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["adam", "mlp", "ce", "auto", "", "1e-3", "x"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=4), inner, max_size=2)),
                      max_leaves=4)


@st.composite
def configs(draw):
    out = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "fitt"]), max_size=3, unique=True)):
        keys = SECTIONS.get(section, ["epochs"])
        out[section] = draw(st.one_of(
            st.dictionaries(st.sampled_from(keys + ["bogus"]), VALUES, max_size=3), SCALARS))
    return out


@SETTINGS
@given(values=configs())
def test_generated_config_builds_or_names_the_key(values):
    try:
        config = RunConfig.from_dict(values, where="c.yaml:")
    except TraingroundError as err:
        assert str(err).startswith("c.yaml:") or str(err).startswith("loss."), str(err)
        return
    fit = config.fit
    assert fit.epochs >= 1 and fit.batch_size >= 1 and fit.lr > 0 and 0 <= fit.val_fraction < 1
    assert all(h >= 1 for h in config.model.hidden) and 0 <= config.model.dropout < 1
    assert not any(isinstance(v, float) and math.isnan(v) for v in vars(fit).values())


@SETTINGS
@given(text=st.text(max_size=80))
def test_generated_yaml_text_reads_or_says_why(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        values = read_yaml(path)
    except TraingroundError as err:
        assert str(err).startswith(str(path))
        return
    assert isinstance(values, dict)
    try:
        RunConfig.from_dict(values, where=f"{path}:")
    except TraingroundError:
        pass


@pytest.mark.parametrize("value", [1e39, -1e39, 1e308])
def test_float32_overflow_is_refused_at_load(tmp_path, value):
    frame = pd.DataFrame({"f1": [value, 1.0, 2.0, 3.0], "y": ["a", "b", "a", "b"]})
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(TraingroundError, match="float32"):
        load_data(str(tmp_path / "t.parquet"), target="y")
    assert np.isfinite(np.float64(value))  # finite as float64: only the cast overflows
