"""A small table and search-space files for the tune tests (seconds per trial)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def blobs_csv(tmp_path: Path) -> Path:
    """300 rows, 3 well-separated classes in 4 features: every sane config learns it."""
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = rng.normal(size=(300, 4)) + 3.0 * np.eye(3, 4)[y]
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)]).assign(label=y)
    path = tmp_path / "blobs.csv"
    frame.to_csv(path, index=False)
    return path


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
