"""The dataset diagnosis of a streamed image folder agrees with that of the same folder in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainground.data.image_files import ImageFiles
from trainground.data.images import load_image_folder
from trainground.diagnosis.dataset import DatasetDiagnosisConfig, diagnose_dataset
from trainground.engine import FitConfig


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(30):
            pixels = rng.normal(60 + 70 * c, 25, (8, 8)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i:02d}.png")
    return root


def test_streamed_diagnosis_matches_the_eager_one(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "imgs")
    # the linear view needs the pixels in memory (a streamed folder is a large one, where it is off)
    config = DatasetDiagnosisConfig(fit=FitConfig(epochs=4, batch_size=16, seed=0), linear_view=False)
    eager = diagnose_dataset(load_image_folder(folder, stream=False), config)
    lazy_data = load_image_folder(folder, stream=True)
    assert isinstance(lazy_data.features, ImageFiles)
    lazy = diagnose_dataset(lazy_data, config)
    a, b = eager.table.set_index("index"), lazy.table.set_index("index")
    assert list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
    # the input statistics are summed in another order (chunks), so the weights differ in
    # the last bits: scores agree closely and flags (almost) exactly
    for column in [c for c in a.columns if c.endswith("_score")]:
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), atol=1e-3, err_msg=column)
    for column in [c for c in a.columns if c.startswith("is_")]:
        assert (a[column] == b[column]).mean() >= 0.98, column
    torch.testing.assert_close(torch.as_tensor(eager.pred_probs), torch.as_tensor(lazy.pred_probs), atol=1e-3, rtol=0)
