"""Shared fixtures: small real datasets the tests make themselves (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits, load_iris

from trainground.data import IndexedDataset, LabelEncoder
from trainground.engine import Callback


class CrashAt(Callback):
    """Interrupts a run after optimizer step ``step`` (a crash, as far as fit can tell)."""

    def __init__(self, step: int, error: type[BaseException] = KeyboardInterrupt) -> None:
        self.step, self.error = step, error

    def on_batch_end(self, state) -> None:
        if state.step == self.step:
            raise self.error("crash")


@pytest.fixture
def crash_at():
    """``crash_at(step)``: a callback that interrupts fit after that step."""
    return CrashAt


@pytest.fixture(autouse=True)
def _one_thread():
    # Determinism and speed: the suite compares weights bit for bit, and 2 cores are shared.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def digits() -> IndexedDataset:
    d = load_digits()
    return IndexedDataset(
        features=torch.tensor(d.data, dtype=torch.float32),
        labels=torch.tensor(d.target, dtype=torch.long),
        index=torch.arange(len(d.target)),
        encoder=LabelEncoder.fit(d.target),
        kind="table",
        name="digits",
    )


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    """Iris with string labels and a categorical column (a real mixed table)."""
    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    rng = np.random.default_rng(0)
    frame["site"] = rng.choice(["north", "south", "east"], size=len(frame))
    frame["species"] = np.asarray(iris.target_names)[iris.target]
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def iris_frame(iris_csv: Path) -> pd.DataFrame:
    return pd.read_csv(iris_csv)


@pytest.fixture(scope="session")
def chromium() -> None:
    """Headless Chromium and its driver for the browser tests: skips without them, but fails
    under CI=true (CI installs them, so a skip there would hide a broken test). Session scope:
    pytest sets up wider-scoped fixtures first, so this runs before a test's run fixtures."""
    from trainground.report.browser import chromium_paths

    reason = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = "selenium is not installed (pip install -e '.[dev]')"
    if reason is None and chromium_paths() is None:
        reason = "Chromium not found at /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)"
    if reason is not None:
        skip_or_fail_in_ci(reason)


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip a test whose real component (Chromium, PostgreSQL, ...) is missing, but fail under
    CI=true: CI installs every such component (.ci/run), so a skip there would hide a failure."""
    import os

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so this test must run, not be skipped")
    pytest.skip(reason)
