"""``trainground explain RUN_DIR``: attributions for a finished run, written into its folder.

For the flagged samples of ``sample_issues.csv`` (the strongest evidence first) the
attribution of the logit of the label the sample carries and of the label suggested: a
suspected label issue typically has little or negative evidence for its given label and
strong evidence for the suggested one. Per class, the mean attribution towards the class
over samples carrying it. Tables get the top features with signed values; images (and
tables whose columns are the pixels of a square image) a heatmap over the thumbnail.

Files (listed in the run's manifest before they are written): ``explanations.json`` (what
the report shows) and, for tables, ``explanations.csv`` (every attribution of every
explained sample).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import torch

from trainground.bounds import AT_LEAST_ONE
from trainground.engine.atomic import atomic_write_text
from trainground.engine.predict import load_trained_model
from trainground.engine.run import prepare_data
from trainground.engine.run_config import RunConfig
from trainground.engine.rundir import RunDir
from trainground.errors import RunDirError
from trainground.explain.attribute import Method, attribute, top_features
from trainground.explain.heatmap import heatmap_uri, image_uri, pixel_side
from trainground.jsonsafe import json_safe

EXPLANATIONS_FILE, ATTRIBUTIONS_FILE = "explanations.json", "explanations.csv"


@dataclass
class ExplainConfig:
    """What ``explain`` attributes, and how."""

    # integrated_gradients (default: complete, and cheap on these models), saliency, or for
    # tables kernel_shap / lime (model-agnostic, ~samples forward passes per explanation).
    method: Method = "integrated_gradients"
    # Flagged samples explained (the lowest label-issue scores first).
    samples: Annotated[int, AT_LEAST_ONE] = 20
    # Samples per class whose attributions are averaged for the per-class view.
    per_class: Annotated[int, AT_LEAST_ONE] = 50
    # Features listed per explanation.
    top: Annotated[int, AT_LEAST_ONE] = 5
    # Integrated Gradients' integration steps (error of the completeness sum ~ 1/steps).
    steps: Annotated[int, AT_LEAST_ONE] = 32
    # Perturbed samples per explanation of KernelSHAP and LIME.
    perturbations: Annotated[int, AT_LEAST_ONE] = 200


def _class_ids(values: pd.Series, classes: list[Any]) -> np.ndarray:
    lookup = {str(c): i for i, c in enumerate(classes)}
    return np.array([lookup.get(str(v), -1) for v in values], dtype=np.int64)


def flagged_samples(table: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Flagged rows of ``sample_issues.csv`` with a suggested label, strongest evidence first."""
    issue_cols = [c for c in table.columns if c.startswith("is_") and c.endswith("_issue")]
    if not issue_cols or "suggested_label" not in table:
        return table.iloc[:0]
    flagged = table[table[issue_cols].astype(bool).any(axis=1)]
    score = "label_score" if "label_score" in flagged else None
    return (flagged.sort_values(score, kind="stable") if score else flagged).head(limit)


def explain_run(run_dir: str | Path, *, config: ExplainConfig | None = None) -> dict[str, Any]:
    """Attribute the run's model on its own data; write and return ``explanations.json``'s record."""
    config = config or ExplainConfig()
    run = RunDir.open(run_dir, write=True)
    if not run.model.is_file():
        raise RunDirError(f"{run.path}: no model.safetensors; explain needs a finished run")
    trained = load_trained_model(run)
    model, classes = trained.model, list(trained.encoder.classes)
    run_config = RunConfig.from_dict(run.read_config(), where=f"{run.config}:")
    data = prepare_data(run_config.data).train  # labels as trained (noise injected, if any)
    features, labels = data.features.float(), data.labels.numpy()
    position = {int(i): p for p, i in enumerate(data.index.tolist())}
    is_table = features.ndim == 2
    names = list(getattr(data.schema, "feature_names", ()) or [f"x{i}" for i in range(features.shape[1])]) \
        if is_table else []
    side = pixel_side(names) if is_table else None
    baseline = features.mean(0) if is_table else torch.zeros_like(features[0])

    def attr(rows: list[int], targets: np.ndarray) -> torch.Tensor:
        return attribute(model, features[rows], torch.as_tensor(targets), method=config.method, baseline=baseline,
                         steps=config.steps, samples=config.perturbations)

    record: dict[str, Any] = {"method": config.method, "kind": "table" if is_table else "image",
                              "baseline": "mean training input" if is_table else "black image",
                              "per_class": [], "samples": []}
    for c, name in enumerate(classes):
        rows = np.flatnonzero(labels == c)[: config.per_class].tolist()
        if not rows:
            continue
        mean = attr(rows, np.full(len(rows), c)).mean(0)
        entry: dict[str, Any] = {"class": name, "samples": len(rows)}
        if is_table:
            entry["top"] = top_features(mean, names, config.top)
        if not is_table or side:
            entry["heatmap"] = heatmap_uri(_as_image(features[rows].mean(0), side), _as_image(mean, side))
        record["per_class"].append(entry)
    rows_csv = []
    if run.sample_issues.is_file():
        table = flagged_samples(pd.read_csv(run.sample_issues), config.samples)
        given, suggested = _class_ids(table["given_label"], classes), _class_ids(table["suggested_label"], classes)
        keep = [k for k in range(len(table)) if given[k] >= 0 and suggested[k] >= 0
                and int(table["index"].iloc[k]) in position]
        rows = [position[int(table["index"].iloc[k])] for k in keep]
        if rows:
            a_given, a_sugg = attr(rows, given[keep]), attr(rows, suggested[keep])
            for j, k in enumerate(keep):
                record["samples"].append(_sample_entry(
                    int(table["index"].iloc[k]), classes[given[k]], classes[suggested[k]], features[rows[j]],
                    a_given[j], a_sugg[j], names, side, config.top))
                if is_table:
                    for kind, values in (("given", a_given[j]), ("suggested", a_sugg[j])):
                        rows_csv.append({"index": int(table["index"].iloc[k]), "target": kind,
                                         "class": classes[(given if kind == "given" else suggested)[k]],
                                         **dict(zip(names, values.tolist(), strict=True))})
    if rows_csv:
        atomic_write_text(run.path / ATTRIBUTIONS_FILE, pd.DataFrame(rows_csv).to_csv(index=False))
    atomic_write_text(run.path / EXPLANATIONS_FILE, json.dumps(json_safe(record)))
    return record


def _as_image(values: torch.Tensor, side: int | None) -> np.ndarray:
    """``[C, H, W]`` / a flat square table row as an ``[H, W]`` or ``[H, W, 3]`` array."""
    array = values.detach().numpy()
    if side:
        return array.reshape(side, side)
    return array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)


def _sample_entry(index: int, given: Any, suggested: Any, x: torch.Tensor, a_given: torch.Tensor,
                  a_sugg: torch.Tensor, names: list[str], side: int | None, top: int) -> dict[str, Any]:
    total_given, total_sugg = float(a_given.sum()), float(a_sugg.sum())
    entry: dict[str, Any] = {"index": index, "given": given, "suggested": suggested,
                             "total_given": total_given, "total_suggested": total_sugg}
    why = (f"inputs push towards given {given} by {total_given:+.2f} and towards suggested {suggested} by "
           f"{total_sugg:+.2f} (logit units)")
    if names:
        entry["given_top"] = top_features(a_given, names, top)
        entry["suggested_top"] = top_features(a_sugg, names, top)
        lead = entry["suggested_top"][0]
        why += f"; strongest for {suggested}: {lead['feature']} {lead['value']:+.2f}"
    if not names or side:
        picture = _as_image(x, side)
        entry["thumbnail"] = image_uri(picture)
        entry["heatmap_given"] = heatmap_uri(picture, _as_image(a_given, side))
        entry["heatmap_suggested"] = heatmap_uri(picture, _as_image(a_sugg, side))
    entry["why"] = why if math.isfinite(total_given + total_sugg) else "attributions not finite"
    return entry
