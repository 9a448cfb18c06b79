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
from trainground.data.tasks import TaskSpec
from trainground.engine.evaluate import predict_logits, predict_task_outputs
from trainground.engine.task_kinds import task_kind
from trainground.engine.model_file import read_model_file
from trainground.engine.rundir import RunDir
from trainground.errors import RunDirError
from trainground.models import model_from_spec


@dataclass
class TrainedModel:
    """A model restored from ``model.safetensors``, with how to encode inputs and decode outputs."""

    model: nn.Module
    encoder: LabelEncoder | None
    schema: Any
    # A multi-target model's tasks (``data.TaskSpec``); None for a single-target one.
    tasks: tuple[TaskSpec, ...] | None = None


def load_trained_model(run_dir: str | Path | RunDir) -> TrainedModel:
    """Rebuild the model of a run from its ``model.safetensors`` alone."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    tensors, meta = read_model_file(run.model)
    multi = "tasks" in meta
    missing = [key for key in ("model", "data_schema") + (() if multi else ("classes",)) if key not in meta]
    if missing:
        raise RunDirError(
            f"{run.model}: lacks {', '.join(missing)} in its metadata; it was not written by a trainground "
            "CLI run, so load it with your own code"
        )
    try:
        model = model_from_spec(meta["model"])
        model.load_state_dict(tensors)
        encoder = None if multi else LabelEncoder.from_json(meta["classes"])
        schema = schema_from_json(meta["data_schema"])
        tasks = tuple(TaskSpec.from_json(t) for t in meta["tasks"]) if multi else None
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # metadata and tensors disagree
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunDirError(f"{run.model}: the model file is damaged or was changed ({first[:200]})") from None
    out_features = _output_size(model)
    expected = len(encoder.classes) if encoder is not None else sum(t.out_features for t in tasks or ())
    if out_features is not None and out_features != expected:
        raise RunDirError(f"{run.model}: the model has {out_features} outputs but its metadata lists "
                          f"{expected} classes; the model file is damaged or was changed")
    model.eval()
    return TrainedModel(model=model, encoder=encoder, schema=schema, tasks=tasks)


def _output_size(model: nn.Module) -> int | None:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return None if last is None else last.out_features


def predict(run_dir: str | Path | RunDir, data: str | Path, *, batch_size: int = 1024) -> pd.DataFrame:
    """One row per input row: ``row``, ``predicted_label`` and ``prob_<class>`` for every class.

    A multi-target run gives one prediction per task instead: ``predicted_<task>`` and, for a
    class task, ``prob_<task>_<class>``.

    ``row`` is the 0-based data row of a table (header excluded) or the relative path of
    an image. Labels and column names use the original label values.
    """
    trained = load_trained_model(run_dir)
    features, row_ids = load_features_for_prediction(str(data), trained.schema)
    if trained.tasks is not None:
        return _predict_tasks(trained, features, row_ids, batch_size=batch_size)
    assert trained.encoder is not None
    logits = predict_logits(trained.model, features, batch_size=batch_size)
    probs = torch.softmax(logits, dim=1).numpy()
    frame = pd.DataFrame({"row": row_ids, "predicted_label": trained.encoder.decode(probs.argmax(axis=1))})
    for i, label in enumerate(trained.encoder.classes):
        frame[f"prob_{label}"] = probs[:, i]
    return frame


def _predict_tasks(trained: TrainedModel, features: Any, row_ids: list[Any], *, batch_size: int) -> pd.DataFrame:
    outputs = predict_task_outputs(trained.model, features, batch_size=batch_size)
    frame = pd.DataFrame({"row": row_ids})
    for spec in trained.tasks or ():
        out = outputs[spec.name]
        predicted = task_kind(spec.kind).predict(out)
        if spec.kind == "class":
            probs = torch.softmax(out, dim=1).numpy()
            classes = spec.classes or tuple(range(out.shape[1]))
            frame[f"predicted_{spec.name}"] = [classes[int(i)] for i in predicted.tolist()]
            for i, label in enumerate(classes):
                frame[f"prob_{spec.name}_{label}"] = probs[:, i]
        else:
            values = predicted.numpy()
            frame[f"predicted_{spec.name}"] = list(values) if values.ndim > 1 else values
    return frame
