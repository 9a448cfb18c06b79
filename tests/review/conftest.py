"""A small real run to review: ``diagnose`` on a table whose labels carry HTML/JS payloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Label values a hostile or careless table may hold: the page must show them as text.
PAYLOADS = ("<img src=x onerror=window.__xss=1>", "<script>window.__xss=2</script>", "plain")


@pytest.fixture(scope="session")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A diagnosed run of a 3-class table (15 % of the labels flipped); read-only for tests."""
    import torch

    from trainground.engine import FitConfig
    from trainground.recipes.diagnose import diagnose

    root = tmp_path_factory.mktemp("review")
    rng = np.random.default_rng(0)
    n = 240
    classes = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    features = centres[classes] + rng.normal(0, 0.7, (n, 3))
    labels = classes.copy()
    flip = rng.random(n) < 0.15
    labels[flip] = (labels[flip] + 1) % 3
    frame = pd.DataFrame(features, columns=["x<b>1</b>", "x2", "x3"])
    frame["label"] = [PAYLOADS[c] for c in labels]
    source = root / "data.csv"
    frame.to_csv(source, index=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        diagnose(source, target="label", out=root / "run", fit_config=FitConfig(epochs=6, seed=0))
    finally:
        torch.set_num_threads(threads)
    return root / "run"


@pytest.fixture
def run_copy(table_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(table_run, target)
    return target
