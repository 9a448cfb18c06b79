"""Predictions of a finished run on new data, in the user's original label values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from trainground.data import (
    LabelEncoder,
    load_features_for_prediction,
    schema_from_json,
)
from trainground.engine.evaluate import predict_logits
from trainground.engine.model_file import read_model_file
from trainground.engine.rundir import RunDir
from trainground.errors import RunDirError
from trainground.models import model_from_spec


@dataclass
class TrainedModel:
    """A model restored from ``model.safetensors``, with how to encode inputs and decode outputs."""

    model: nn.Module
    encoder: LabelEncoder
    schema: Any


def load_trained_model(run_dir: str | Path | RunDir) -> TrainedModel:
    """Rebuild the model of a run from its ``model.safetensors`` alone."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    tensors, meta = read_model_file(run.model)
    missing = [key for key in ("model", "classes", "data_schema") if key not in meta]
    if missing:
        raise RunDirError(
            f"{run.model}: lacks {', '.join(missing)} in its metadata; it was not written by a trainground "
            "CLI run, so load it with your own code"
        )
    try:
        model = model_from_spec(meta["model"])
        model.load_state_dict(tensors)
        encoder = LabelEncoder.from_json(meta["classes"])
        schema = schema_from_json(meta["data_schema"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # metadata and tensors disagree
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunDirError(f"{run.model}: the model file is damaged or was changed ({first[:200]})") from None
    out_features = _output_size(model)
    if out_features is not None and out_features != len(encoder.classes):
        raise RunDirError(f"{run.model}: the model has {out_features} outputs but its metadata lists "
                          f"{len(encoder.classes)} classes; the model file is damaged or was changed")
    model.eval()
    return TrainedModel(model=model, encoder=encoder, schema=schema)


def _output_size(model: nn.Module) -> int | None:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return None if last is None else last.out_features


def predict(run_dir: str | Path | RunDir, data: str | Path, *, batch_size: int = 1024) -> pd.DataFrame:
    """One row per input row: ``row``, ``predicted_label`` and ``prob_<class>`` for every class.

    ``row`` is the 0-based data row of a table (header excluded) or the relative path of
    an image. Labels and column names use the original label values.
    """
    trained = load_trained_model(run_dir)
    features, row_ids = load_features_for_prediction(str(data), trained.schema)
    logits = predict_logits(trained.model, features, batch_size=batch_size)
    probs = torch.softmax(logits, dim=1).numpy()
    frame = pd.DataFrame({"row": row_ids, "predicted_label": trained.encoder.decode(probs.argmax(axis=1))})
    for i, label in enumerate(trained.encoder.classes):
        frame[f"prob_{label}"] = probs[:, i]
    return frame
