"""Streamed image folders (``ImageFiles``): the same tensors as the eager loader, decoded per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainground.data.image_files import ImageFiles
from trainground.data.images import load_image_folder
from trainground.engine.batches import BatchSource
from trainground.errors import DataError
from trainground.models.standardize import Standardize


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three classes of RGB and grey noise images of mixed sizes (resized to the first's)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c, name in enumerate(["ant", "bee", "cow"]):
        (root / name).mkdir(parents=True)
        for i in range(7 + c):
            size = (9, 7) if i % 3 else (12, 10)
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def test_streamed_folder_gives_the_eager_tensors(folder: Path) -> None:
    eager = load_image_folder(folder, stream=False)
    lazy = load_image_folder(folder, stream=True, workers=2)
    assert isinstance(lazy.features, ImageFiles) and isinstance(eager.features, torch.Tensor)
    assert lazy.features.shape == eager.features.shape and lazy.input_shape == eager.input_shape
    assert torch.equal(lazy.labels, eager.labels) and torch.equal(lazy.index, eager.index)
    assert lazy.sources == eager.sources and lazy.schema == eager.schema
    assert torch.equal(lazy.features.materialize(), eager.features)
    positions = torch.tensor([5, 0, 17, 3])
    for a, b in zip(lazy.get_batch(positions), eager.get_batch(positions), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(lazy[4][1], eager[4][1])
    assert torch.equal(lazy.features[2:9], eager.features[2:9])
    assert torch.equal(lazy.features[[1, 2], 0], eager.features[[1, 2], 0])  # rows, then the rest
    assert torch.equal(torch.cat(list(lazy.features.split(4))), eager.features)


def test_subset_stays_lazy_and_batches_agree(folder: Path) -> None:
    eager = load_image_folder(folder, stream=False)
    lazy = load_image_folder(folder, stream=True)
    keep = np.array([20, 1, 8, 13])
    part = lazy.subset(keep)
    assert isinstance(part.features, ImageFiles) and len(part) == 4
    assert torch.equal(part.features.materialize(), eager.subset(keep).features)
    source = BatchSource(part)
    index, x, y = source.batch(torch.tensor([3, 0]), "cpu")
    assert index.tolist() == [13, 20]
    assert torch.equal(x, eager.features[[13, 20]]) and torch.equal(y, eager.labels[[13, 20]])


def test_statistics_in_chunks_match_the_whole_tensor(folder: Path) -> None:
    eager = load_image_folder(folder, stream=False).features
    files = load_image_folder(folder, stream=True).features
    files_chunked = ImageFiles(files.files, files.schema)
    whole, chunked = Standardize((3, 1, 1)), Standardize((3, 1, 1))
    whole.fit(eager, dims=(0, 2, 3))
    # chunks of 4 images: the pairwise merge, not one pass, gives the statistics
    chunked.fit(_Chunks(files_chunked, 4), dims=(0, 2, 3))
    torch.testing.assert_close(chunked.mean, whole.mean)
    torch.testing.assert_close(chunked.std, whole.std)


def test_auto_streams_only_past_the_byte_limit(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_image_folder(folder).features, torch.Tensor)
    monkeypatch.setattr("trainground.data.images.STREAM_BYTES", 100)
    assert isinstance(load_image_folder(folder).features, ImageFiles)


def test_a_float_image_with_nan_is_refused_when_decoded(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F").save(tmp_path / name / "ok.tif")
    Image.fromarray(np.full((4, 4), np.nan, dtype=np.float32), mode="F").save(tmp_path / "b" / "nan.tif")
    files = load_image_folder(tmp_path, stream=True).features
    assert torch.isfinite(files[[0]]).all()
    with pytest.raises(DataError, match="nan.tif"):
        files.materialize()


class _Chunks:
    """An ImageFiles whose ``split`` uses a small chunk, as a large store would in many parts."""

    def __init__(self, files: ImageFiles, chunk: int) -> None:
        self.files, self.chunk = files, chunk

    def split(self):
        return self.files.split(self.chunk)
