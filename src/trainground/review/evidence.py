"""The evidence shown beside a sample: thumbnail, feature values, nearest neighbours, attributions.

Everything is read from the run's own files and the data source its ``config.yaml`` names,
by sample index; no path ever comes from a request. The slow parts (encoding the data,
the model's representation of every sample) are computed once, in a background thread
started with the server, so the first page never waits for them; until they are ready
the sample page says so.

Neighbours are taken in the representation the diagnosis itself used: the penultimate
layer of the run's saved model (``model.embed``), compared by cosine similarity. A model
without ``embed`` falls back to the encoded input features, and the page says which.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainground.report.thumbnails import image_shape, sample_thumbnails, table_thumbnails
from trainground.review.run import ReviewRun

NEIGHBOURS = 8  # shown per sample: enough to see whether the labels around it agree


@dataclass
class Space:
    """Unit-length vectors of every row of the data source, and their row positions by sample index."""

    vectors: np.ndarray
    position: dict[int, int]
    kind: str  # "the model's representation" or "the input features"


class Evidence:
    """Lazily loaded evidence of one review run (thread-safe: read-only once loaded)."""

    def __init__(self, run: ReviewRun) -> None:
        self.run = run
        meta = run.model_meta()
        self.schema: dict[str, Any] | None = meta.get("data_schema")
        self.space: Space | None = None
        self.space_error: str | None = None
        self._frame: Any = None
        self._ready = threading.Event()
        self._explanations: dict[int, dict[str, Any]] | None = None
        self._pixels: np.ndarray | None = None  # a pixel table's rows, read once (thumbnails of any page)
        self._pixels_note: str | None = None

    # -- background work -----------------------------------------------------------------

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.load, name="review-evidence", daemon=True)
        thread.start()
        return thread

    def load(self) -> None:
        try:
            self.space = self._space()
        except Exception as err:  # noqa: BLE001 - the data moved or the model is unreadable: no neighbours
            self.space_error = f"{type(err).__name__}: {err}"
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def _space(self) -> Space | None:
        if not self.run.source or self.schema is None:
            self.space_error = "the run's config.yaml names no data source, or the model file has no data schema"
            return None
        import torch

        from trainground.data import load_features_for_prediction
        from trainground.diagnosis.label_probs import embed
        from trainground.engine.predict import load_trained_model

        features, row_ids = load_features_for_prediction(self.run.source, self.schema)
        kind = "the input features"
        vectors = None
        if self.run.model.is_file():
            trained = load_trained_model(self.run.model.parent)
            vectors = embed(trained.model, features, torch.device("cpu"))
            kind = "the model's representation (penultimate layer)"
        if vectors is None:
            vectors, kind = features.reshape(len(features), -1).numpy(), "the input features"
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        # Tables and builtins: the row id is the sample index; an image folder's files are indexed in order.
        position = {int(r) if isinstance(r, (int, np.integer)) else p: p for p, r in enumerate(row_ids)}
        return Space(vectors=vectors, position=position, kind=kind)

    # -- per request ---------------------------------------------------------------------

    def neighbours(self, index: int, k: int = NEIGHBOURS) -> list[tuple[int, float]]:
        """``(sample index, cosine similarity)`` of the ``k`` nearest other samples, nearest first."""
        space = self.space
        if space is None or index not in space.position:
            return []
        sims = space.vectors @ space.vectors[space.position[index]]
        sims[space.position[index]] = -np.inf
        k = min(k, len(sims) - 1)
        top = np.argpartition(-sims, k)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top])]
        return [(_index_at(space, int(p)), float(sims[p])) for p in top]

    def prepare(self) -> None:
        """Read a pixel table's pixel columns once (before serving), so no page re-reads the source."""
        shape = image_shape(self.schema)
        if shape is None or self.schema is None or self.schema.get("kind") == "image" or not self.run.source:
            return
        columns = [str(c) for c in self.schema["columns"]]
        try:
            from trainground.data.builtin import PREFIX, builtin_frame

            source = self.run.source
            if source.startswith(PREFIX):
                frame = builtin_frame(source)[columns]
            elif Path(source).suffix.lower() in (".parquet", ".pq"):
                frame = pd.read_parquet(source, columns=columns)
            else:
                frame = pd.read_csv(source, usecols=columns)
            self._pixels = frame[columns].to_numpy(dtype=np.float32)
        except Exception as err:  # noqa: BLE001 - the data moved or changed: the page works without pictures
            self._pixels_note = f"thumbnails omitted: {self.run.source} could not be read ({type(err).__name__}: {err})"

    def thumbnails(self, indices: list[int]) -> tuple[dict[int, str], str | None]:
        """Data URIs of the samples' pictures (image-like data only), and a note when there are none."""
        shape = image_shape(self.schema)
        if self._pixels_note is not None:
            return {}, self._pixels_note
        if self._pixels is not None and shape is not None:
            wanted = [int(i) for i in indices if 0 <= int(i) < len(self._pixels)]
            if not wanted:
                return {}, None
            return dict(zip(wanted, table_thumbnails(self._pixels[wanted], shape[1]), strict=True)), None
        return sample_thumbnails(self.run.config, self.schema, indices)  # image folders: only these files are read

    def feature_values(self, index: int, limit: int = 40) -> list[tuple[str, Any]]:
        """The sample's row of the source table (column, value), for tables that are not pictures; [] otherwise."""
        if self.schema is None or image_shape(self.schema) is not None or not self.run.source:
            return []  # pictures are shown as pictures, not as 64 pixel values
        if self._frame is None:
            from trainground.data.builtin import PREFIX, builtin_frame
            from trainground.data.files import read_table

            source = self.run.source
            self._frame = builtin_frame(source) if source.startswith(PREFIX) else read_table(Path(source))
        frame = self._frame
        if not 0 <= index < len(frame):
            return []
        row = frame.iloc[int(index)]
        return [(str(c), row[c]) for c in list(frame.columns)[:limit]]

    def heatmap(self, index: int) -> tuple[str | None, list[tuple[str, float]]]:
        """The attribution of ``index`` from ``explanations.json`` (``trainground explain``): the
        heatmap towards the suggested label for image-like data, and the features with the largest
        signed attributions towards it for tables; ``(None, [])`` without a file or an entry."""
        if self.run.explanations is None:
            return None, []
        if self._explanations is None:
            try:
                record = json.loads(self.run.explanations.read_text(encoding="utf-8"))
                entries = record.get("samples", []) if isinstance(record, dict) else []
                self._explanations = {int(e["index"]): e for e in entries if isinstance(e, dict) and "index" in e}
            except (OSError, ValueError, TypeError, KeyError):
                self._explanations = {}  # an unreadable file shows no attribution, the page still works
        entry = self._explanations.get(int(index))
        if entry is None:
            return None, []
        image = entry.get("heatmap_suggested") or entry.get("heatmap_given")
        if not (isinstance(image, str) and image.startswith("data:image/png;base64,")):
            image = None  # only the PNG data URIs explain writes are put in the page
        top = entry.get("suggested_top") or entry.get("given_top") or []
        features = [(str(t["feature"]), float(t["value"])) for t in top
                    if isinstance(t, dict) and "feature" in t and "value" in t]
        return image, features


def _index_at(space: Space, position: int) -> int:
    # row position -> sample index (the inverse map, built once and kept on the space)
    back = getattr(space, "_back", None)
    if back is None:
        back = np.empty(len(space.vectors), dtype=np.int64)
        for i, p in space.position.items():
            back[p] = i
        space._back = back  # type: ignore[attr-defined]
    return int(back[position])
