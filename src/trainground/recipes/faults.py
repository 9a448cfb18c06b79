"""``trainground recipe faults``: fault type x severity from vibration signals, end to end.

A thin workflow over library calls: load ``builtin:faults`` (or any table) with two targets
(``data.load_multitarget``), keep a stratified share of it, hold out a test split, train one
multi-head model with the configured multi-task loss (class weights, event weights, task
weighting) through the Guard with per-task gradients, diagnose every task's labels from that
training (``diagnosis.tasks``), score the test split per task, and render the report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import f1_score, recall_score

from trainground.data import MultiTargetDataset, load_multitarget, stratified_split, target_list
from trainground.data.faults import FAULT_SHARE, FAULT_TYPES
from trainground.diagnosis.dataset import DatasetDiagnosisConfig
from trainground.diagnosis.tasks import TaskDiagnosis, diagnose_tasks
from trainground.engine import Callback, RunConfig, RunDir
from trainground.engine.config_io import read_yaml
from trainground.engine.evaluate import predict_task_outputs
from trainground.engine.rundir import check_inputs_outside
from trainground.engine.run_losses import run_loss
from trainground.errors import ConfigError, TraingroundError
from trainground.recipes.diagnose import print_task_diagnosis
from trainground.report.render import write_report

# Where the documented configuration lives; the recipe's defaults are the same values.
EXAMPLE = "examples/faults.yaml"
DEFAULTS: dict[str, Any] = {
    "data": {"source": "builtin:faults", "target": ["fault", "severity"], "test_fraction": 0.2},
    "model": {"name": "cnn1d", "conv1d_channels": [16, 16, 32, 32]},
    "fit": {"epochs": 10, "batch_size": 64, "lr": 1e-3, "val_fraction": 0.15, "threads": 1},
    "loss": {"name": "weighted_ce", "weighting": "inverse_sqrt", "task_weighting": "uncertainty",
             "events": [{"when": "severity >= 4", "weight": 3.0}]},
    "tasks": {"per_task": True, "max_norm": 1.0},
}
# Fault types with a share <= 3 % of the generator's samples: the rare faults whose recall is reported.
RARE_FAULTS = tuple(FAULT_TYPES[i] for i, share in enumerate(FAULT_SHARE) if share <= 3)


@dataclass
class FaultsResult:
    """The recipe's outcome: the diagnosis (run, tables, findings) and the test scores per task."""

    diagnosis: TaskDiagnosis
    test: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0
    report: Path | None = None


def faults_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """The recipe's ``RunConfig``: ``DEFAULTS`` or a YAML file, then ``fit``-section overrides (epochs, seed)."""
    values = read_yaml(path) if path is not None else json.loads(json.dumps(DEFAULTS))
    config = RunConfig.from_dict(values, where=f"{path}:" if path else "recipe faults")
    if target_list(config.data.target) is None:
        raise ConfigError("recipe faults: data.target must name two or more columns (e.g. [fault, severity])")
    for key, value in overrides.items():
        if value is not None:
            setattr(config.fit, key, value)
    return config


def subsample(data: MultiTargetDataset, samples: int | None, seed: int = 0) -> MultiTargetDataset:
    """A stratified (by the first task) share of ``samples`` rows, or all of them."""
    if samples is None or samples >= len(data):
        return data
    _, keep = stratified_split(data.labels.numpy(), fraction=samples / len(data), seed=seed)
    return data.subset(np.sort(keep))


def run_faults(config: RunConfig, *, out: str | Path, samples: int | None = 2000, overwrite: bool = False,
               console: Console | None = None, callbacks: list[Callback] | None = None) -> FaultsResult:
    """Train, diagnose, test and report as ``config`` says (see the module docstring)."""
    started = time.perf_counter()
    console = console or Console()
    source = config.data.source
    check_inputs_outside(out, [source])
    data = subsample(load_multitarget(source, targets=target_list(config.data.target) or [],
                                      max_categories=config.data.max_categories, ignore=config.data.ignore),
                     samples)
    test = None
    if config.data.test_fraction > 0:
        train_pos, test_pos = stratified_split(data.labels.numpy(), fraction=config.data.test_fraction, seed=0)
        data, test = data.subset(train_pos), data.subset(test_pos)
    train_pos, _ = stratified_split(data.labels.numpy(), fraction=config.fit.val_fraction, seed=config.fit.seed)
    loss_fn = run_loss(config.loss, source, data.subset(train_pos))
    run = RunDir.create(out, overwrite=overwrite, inputs=[source], resumable=True)
    try:
        run.write_config(config.to_dict())
        diagnosis = diagnose_tasks(
            data, DatasetDiagnosisConfig(fit=config.fit, model=config.model, guard=config.guard, second_pass=False),
            run_dir=run, loss_fn=loss_fn, tasks=config.tasks, callbacks=callbacks or [],
        )
    except TraingroundError:
        run.discard()
        raise
    scores: dict[str, dict[str, Any]] = {}
    if test is not None:
        scores = test_scores(diagnosis.fit.model, test)
        record = {"kind": "test", "step": diagnosis.fit.steps,
                  "test_accuracy": float(np.mean([s["accuracy"] for s in scores.values()]))}
        for task, values in scores.items():
            record.update({f"test_{k}/{task}": v for k, v in values.items() if not isinstance(v, dict)})
        with open(run.metrics, "a", encoding="utf-8") as fh:  # listed in the manifest by fit()
            fh.write(json.dumps(record) + "\n")
    result = FaultsResult(diagnosis, scores, samples=len(data) + (0 if test is None else len(test)),
                          seconds=time.perf_counter() - started)
    result.report = write_report(run.path)
    print_task_diagnosis(diagnosis, console)
    print_outcome(result, console)
    return result


def test_scores(model: Any, test: MultiTargetDataset) -> dict[str, dict[str, Any]]:
    """Per task on the held-out split: accuracy, macro-F1, per-class recall; rare-fault recall for ``fault``."""
    device = next(model.parameters()).device
    outputs = predict_task_outputs(model, test.features, device=device)
    out: dict[str, dict[str, Any]] = {}
    for spec in test.tasks:
        y = test.targets[spec.name].numpy()
        pred = outputs[spec.name].argmax(1).numpy()
        labels = list(range(int(spec.num_classes or 0)))
        recall = recall_score(y, pred, labels=labels, average=None, zero_division=0)
        classes = spec.classes or tuple(labels)
        scores: dict[str, Any] = {
            "accuracy": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            "recall": {str(classes[i]): float(r) for i, r in enumerate(recall)},
        }
        rare = [i for i, c in enumerate(classes) if c in RARE_FAULTS]
        if rare:
            scores["rare_recall"] = float(np.mean(recall[rare]))
        out[spec.name] = scores
    return out


def print_outcome(result: FaultsResult, console: Console) -> None:
    table = Table(title="faults recipe outcome", title_justify="left")
    for column in ("task", "test accuracy", "test macro-F1", "rare-fault recall", "val accuracy"):
        table.add_column(column)
    final = result.diagnosis.fit.final
    for task, s in result.test.items():
        rare = s.get("rare_recall")
        val = final.get(f"val_accuracy/{task}")
        table.add_row(task, f"{s['accuracy']:.1%}", f"{s['macro_f1']:.3f}", "-" if rare is None else f"{rare:.1%}",
                      "-" if val is None else f"{val:.1%}")
    console.print(table)
    console.print(f"{result.samples} signals, {len(result.diagnosis.fit.history)} epochs, {result.seconds:.0f} s; "
                  f"report: {result.report}", highlight=False, soft_wrap=True)


__all__ = ["DEFAULTS", "FaultsResult", "faults_config", "run_faults", "subsample", "test_scores"]
