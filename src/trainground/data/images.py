"""Image folders: one sub-folder per class, read as float32 ``[N, C, H, W]`` in [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from trainground.data.dataset import IndexedDataset
from trainground.data.labels import LabelEncoder
from trainground.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Pillow modes holding one grey channel; palette ("P") images count as colour
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# Above this many bytes of decoded float32 pixels an image folder is streamed (decoded per
# batch) rather than held: a quarter of a typical 8 GB laptop's spare memory, and far above
# the folders (a few thousand small images) where holding them is the faster choice.
STREAM_BYTES = 512 * 2**20
# what Pillow raises on files that are not images, are cut short or are too big
_READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageSchema:
    """How image files become features, so prediction reads them exactly alike.

    Args:
        height: rows of every image after resizing.
        width: columns of every image after resizing.
        mode: ``"L"`` (one grey channel) or ``"RGB"`` (three channels).
        extensions: accepted file suffixes, lower case with the dot.
    """

    height: int
    width: int
    mode: Literal["L", "RGB"]
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "height": self.height,
            "width": self.width,
            "mode": self.mode,
            "extensions": list(self.extensions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageSchema:
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            mode=data["mode"],
            extensions=tuple(data.get("extensions", IMAGE_EXTENSIONS)),
        )


def load_image_folder(
    path: str | Path, *, image_size: int | None = None, stream: bool | None = None, workers: int = 0,
) -> IndexedDataset:
    """Load a folder holding one sub-folder of images per class.

    Args:
        path: the folder; each sub-folder's name is a class (hidden entries are skipped,
            images in nested folders of a class belong to that class).
        image_size: resize every image to ``image_size`` x ``image_size``; ``None`` keeps
            the size of the first image and resizes the others to it.
        stream: decode images per batch (``features`` is an
            :class:`~trainground.data.image_files.ImageFiles`) instead of all at once;
            None streams when the decoded pixels would exceed ``STREAM_BYTES``.
        workers: threads decoding each batch when streaming (0: the calling thread).

    Returns:
        An ``"image"`` dataset whose ``index`` is the position in the sorted list of
        ``(class, file)`` pairs and whose ``sources`` are the file paths relative to ``path``.
    """
    root = _existing_folder(path)
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}")
    class_dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name
    )
    if not class_dirs:
        loose = len(_image_files(root, IMAGE_EXTENSIONS))
        found = f" (found {loose} image(s) directly in it)" if loose else ""
        raise DataError(
            f"{root}: no class sub-folders{found}; put the images of each class in a sub-folder "
            f"named after the class"
        )
    files: list[Path] = []
    names: list[str] = []
    empty: list[str] = []
    for class_dir in class_dirs:
        found_files = _image_files(class_dir, IMAGE_EXTENSIONS)
        if not found_files:
            empty.append(class_dir.name)
        files.extend(found_files)
        names.extend([class_dir.name] * len(found_files))
    if empty:
        raise DataError(
            f"{root}: class folder(s) {', '.join(map(repr, empty))} hold no images "
            f"(accepted: {', '.join(IMAGE_EXTENSIONS)})"
        )
    if len(class_dirs) < 2:
        raise DataError(
            f"{root}: only one class folder ({class_dirs[0].name!r}); "
            f"classification needs at least 2 classes"
        )
    modes = [_header(f)[0] for f in files]
    mode: Literal["L", "RGB"] = "L" if all(m in _GREY_MODES for m in modes) else "RGB"
    if image_size is None:
        width, height = _header(files[0])[1]
    else:
        width = height = image_size
    schema = ImageSchema(height=height, width=width, mode=mode)
    encoder = LabelEncoder.fit(names)
    decoded_bytes = len(files) * schema.channels * schema.height * schema.width * 4
    if stream is None:
        stream = decoded_bytes > STREAM_BYTES
    if stream:
        from trainground.data.image_files import ImageFiles

        features: Any = ImageFiles(files, schema, workers=workers)
    else:
        features = read_images(files, schema)
    return IndexedDataset(
        features=features,
        labels=torch.from_numpy(encoder.encode(names)),
        index=torch.arange(len(files), dtype=torch.long),
        encoder=encoder,
        kind="image",
        name=str(path),
        schema=schema,
        sources=tuple(f.relative_to(root).as_posix() for f in files),
    )


def load_images_for_prediction(path: str | Path, schema: ImageSchema) -> tuple[Tensor, list[str]]:
    """Read images to predict on, resized and converted as ``schema`` says.

    Args:
        path: one image file, or a folder whose images (in sub-folders too) are read
            in sorted order.
        schema: the schema of the training images.

    Returns:
        ``[N, C, H, W]`` float32 features and each image's path relative to ``path``
        (its file name when ``path`` is a file).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in schema.extensions:
        return read_images([path], schema), [path.name]
    root = _existing_folder(path)
    files = _image_files(root, schema.extensions)
    if not files:
        raise DataError(f"{root}: no images found (accepted: {', '.join(schema.extensions)})")
    return read_images(files, schema), [f.relative_to(root).as_posix() for f in files]


def _existing_folder(path: str | Path) -> Path:
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected a folder of images")
    return root


def _image_files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, skipping hidden files and folders."""
    found = []
    for file in folder.rglob("*"):
        rel = file.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if file.suffix.lower() in extensions and file.is_file():
            found.append(file)
    return sorted(found, key=lambda f: f.relative_to(folder).as_posix())


def _header(file: Path) -> tuple[str, tuple[int, int]]:
    """Mode and (width, height) from the header, without decoding the pixels."""
    try:
        with Image.open(file) as image:
            return image.mode, image.size
    except _READ_ERRORS as err:
        raise DataError(f"{file}: cannot read as an image ({err})") from None


def read_images(files: Sequence[Path], schema: ImageSchema) -> Tensor:
    out = np.empty((len(files), schema.channels, schema.height, schema.width), dtype=np.float32)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as image:
                out[i] = _pixels(image, schema)
        except _READ_ERRORS as err:
            # truncated files pass the header check and only fail when decoded
            raise DataError(f"{file}: cannot read as an image ({err})") from None
    return torch.from_numpy(out)


def _pixels(image: Image.Image, schema: ImageSchema) -> np.ndarray:
    """``[C, H, W]`` float32 in [0, 1] at the schema's size and mode."""
    size = (schema.width, schema.height)
    if image.mode.startswith("I") or image.mode == "F":
        # 16/32-bit grey: convert("L") would clip at 255 instead of scaling
        scale = 1.0 if image.mode == "F" else 65535.0
        grey = np.clip(np.asarray(image, dtype=np.float32) / scale, 0.0, 1.0)
        grey = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BILINEAR))
        plane = np.clip(grey, 0.0, 1.0)[None]
        return plane if schema.mode == "L" else np.repeat(plane, 3, axis=0)
    converted = image.convert(schema.mode)
    if converted.size != size:
        converted = converted.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.float32) / 255.0
    return array[None] if schema.mode == "L" else array.transpose(2, 0, 1)
