"""One entry point from a data spec (``builtin:NAME``, a folder, a table file) to tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from torch import Tensor

from trainground.data.builtin import PREFIX, builtin_frame, load_builtin
from trainground.data.dataset import IndexedDataset
from trainground.data.files import read_table
from trainground.data.images import (
    ImageSchema,
    load_image_folder,
    load_images_for_prediction,
)
from trainground.data.table import TableSchema, encode_table, load_table
from trainground.errors import DataError

Schema = TableSchema | ImageSchema


def load_data(
    spec: str | Path,
    *,
    target: str | None = None,
    image_size: int | None = None,
    max_categories: int = 50,
    ignore: Sequence[str] = (),
    stream_images: bool | None = None,
    declared_kind: Literal["class", "regression"] | None = None,
) -> IndexedDataset:
    """Load training data from a spec.

    Args:
        spec: ``builtin:NAME``, a folder of class sub-folders of images, or a
            ``.csv``/``.parquet`` file.
        target: the label column of a table (required there; ignored otherwise).
        image_size: side of the square images are resized to (image folders only).
        max_categories: most distinct values a text column may have to be one-hot encoded.
        ignore: columns of a table that are not features.
        stream_images: decode an image folder per batch instead of all at once (None:
            when its decoded pixels would exceed ``data.images.STREAM_BYTES``).
        declared_kind: the table target's declared kind (``"class"``: not refused for looking
            continuous); a regression target is loaded by ``load_targets``.

    Returns:
        The dataset, its ``schema`` telling how to encode data for prediction.
    """
    if isinstance(spec, str) and spec.startswith(PREFIX):
        return load_builtin(spec)
    path = _existing(spec)
    if path.is_dir():
        return load_image_folder(path, image_size=image_size, stream=stream_images)
    if target is None:
        columns = ", ".join(map(str, read_table(path).columns))
        raise DataError(f"{path}: a table needs --target COLUMN; columns are {columns}")
    return load_table(path, target=target, max_categories=max_categories, ignore=ignore, declared_kind=declared_kind)


def load_features_for_prediction(
    spec: str | Path, schema: Schema | Mapping[str, Any]
) -> tuple[Tensor, list[Any]]:
    """Encode data to predict on as the training data was encoded.

    Args:
        spec: as for :func:`load_data`; for an image model also a single image file.
            A table's target column, if present, is ignored.
        schema: the training data's schema, or its JSON form.

    Returns:
        The features and one id per row: the 0-based data row (int) for tables and
        builtins, the file path relative to ``spec`` (str) for images.
    """
    if isinstance(schema, Mapping):
        schema = schema_from_json(schema)
    if isinstance(spec, str) and spec.startswith(PREFIX):
        if isinstance(schema, ImageSchema):
            raise DataError(
                f"{spec}: is a table, but the model was trained on images; give a folder of images"
            )
        frame = builtin_frame(spec)
        return encode_table(frame, schema, source=spec), list(range(len(frame)))
    path = _existing(spec)
    if isinstance(schema, ImageSchema):
        if path.is_file() and path.suffix.lower() not in schema.extensions:
            raise DataError(
                f"{path}: the model was trained on images; give a folder of images or an image "
                f"file ({', '.join(schema.extensions)})"
            )
        return load_images_for_prediction(path, schema)
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder, but the model was trained on a table; give a .csv or .parquet file"
        )
    frame = read_table(path)
    return encode_table(frame, schema, source=str(path)), list(range(len(frame)))


def schema_from_json(data: Mapping[str, Any]) -> Schema:
    """The schema stored by ``schema.to_json()``, of the kind it names."""
    kind = data.get("kind")
    if kind == "table":
        return TableSchema.from_json(data)
    if kind == "image":
        return ImageSchema.from_json(data)
    raise DataError(f"unknown data schema kind {kind!r}; expected 'table' or 'image'")


def _existing(spec: str | Path) -> Path:
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path
