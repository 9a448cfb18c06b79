"""One complete run from a :class:`RunConfig`: load, split, (corrupt), build, train, write."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainground.data import (
    IndexedDataset,
    fit_multitarget_on_rows,
    fit_on_rows,
    inject_label_noise,
    load_targets,
    stratified_split,
    target_list,
    tasks_of,
    with_target_scales,
)
from trainground.engine.callbacks import Callback
from trainground.engine.evaluate import predict_logits, test_task_scores
from trainground.engine.loop import FitResult, fit
from trainground.engine.rng import seed_everything
from trainground.engine.run_config import DataConfig, RunConfig
from trainground.engine.run_losses import run_loss
from trainground.engine.rundir import RunDir, check_inputs_outside
from trainground.errors import ConfigError, RunDirError, TraingroundError
from trainground.models import build_model, build_multitask_model

# The test split does not depend on the training seed, so runs with different seeds
# are scored on the same samples.
TEST_SPLIT_SEED = 0


@dataclass
class PreparedData:
    """Training data (possibly with injected noise) and an optional clean test split."""

    train: IndexedDataset
    test: IndexedDataset | None = None
    true_labels: np.ndarray | None = field(default=None, repr=False)  # train labels before noise
    is_corrupted: np.ndarray | None = field(default=None, repr=False)  # which train labels noise changed


def prepare_data(config: DataConfig) -> PreparedData:
    """Load ``config.source``, hold out the test split, then inject noise into the rest."""
    data: Any = load_targets(config.source, target=config.target, kinds=config.task_kinds,
                             image_size=config.image_size, max_categories=config.max_categories,
                             ignore=config.ignore)
    if tasks_of(data) is not None and config.noise is not None:
        raise ConfigError("data.noise injects noise into one class column; a multi-target or regression run "
                          "has none of that kind")
    test = None
    if config.test_fraction > 0:
        train_pos, test_pos = stratified_split(
            data.labels.numpy(), fraction=config.test_fraction, seed=TEST_SPLIT_SEED
        )
        data, test = data.subset(train_pos), data.subset(test_pos)
    if config.noise is None:
        return PreparedData(train=data, test=test)
    true = data.labels.numpy().copy()
    noisy = inject_label_noise(
        true, kind=config.noise.kind, rate=config.noise.rate, seed=config.noise.seed,
        num_classes=data.num_classes, class_map=config.noise.class_map,
    )
    return PreparedData(
        train=data.with_labels(noisy.labels), test=test, true_labels=true, is_corrupted=noisy.is_corrupted
    )


@dataclass
class RunResult:
    """A finished run: where it is, what ``fit`` returned, the data, and test scores."""

    run_dir: RunDir
    fit: FitResult
    data: PreparedData
    seconds: float
    test_accuracy: float | None = None
    # Final-model scores of the regression tasks on the validation split (val_mae/<task>, val_r2/<task>).
    val_scores: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, float | int | str | None]:
        final = self.fit.final
        return {
            "run_dir": str(self.run_dir.path),
            "samples": len(self.data.train),
            "classes": self.data.train.num_classes,
            "corrupted_labels": None if self.data.is_corrupted is None else int(self.data.is_corrupted.sum()),
            "epochs": len(self.fit.history),
            "steps": self.fit.steps,
            "seconds": round(self.seconds, 2),
            "train_accuracy": final.get("train_accuracy"),
            "val_accuracy": final.get("val_accuracy"),
            "test_accuracy": self.test_accuracy,
        }


def _same_source(a: str, b: str) -> bool:
    if a.startswith("builtin:") or b.startswith("builtin:"):
        return a == b
    return Path(a).resolve() == Path(b).resolve()


def resume_config(
    run: RunDir, *, source: str | None, epochs: int | None, target: str | None = None, seed: int | None = None
) -> RunConfig:
    """The config a run was started with; ``epochs`` may rise to train longer, nothing else may change."""
    config = RunConfig.from_dict(run.read_config(), where=f"{run.config}:")
    if source is not None and not _same_source(source, config.data.source):
        raise RunDirError(f"{run.path}: cannot resume: the run was trained on {config.data.source}, not {source}")
    if target is not None and (target_list(target) or target) != (target_list(config.data.target) or config.data.target):
        raise RunDirError(f"{run.path}: cannot resume with --target {target}: the run was started with "
                          f"{config.data.target}")
    for name, given, saved in (("seed", seed, config.fit.seed),):
        if given is not None and given != saved:
            raise RunDirError(f"{run.path}: cannot resume with --{name} {given}: the run was started with {saved}")
    if epochs is not None:
        config.fit.epochs = epochs
    return config


def run_fit(
    config: RunConfig, *, out: str | Path, overwrite: bool = False, resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train as ``config`` says and write the run directory ``out``.

    Args:
        config: data, model and loop options (written to ``config.yaml``).
        out: the run directory.
        overwrite: replace ``out`` if it is an earlier run.
        resume: continue the run in ``out`` from its newest checkpoint.
        callbacks: extra watchers (e.g. a progress bar).
    """
    if config.data.test_fraction and not 0 < config.data.test_fraction < 1:
        raise ConfigError(f"data.test_fraction must be in [0, 1), got {config.data.test_fraction}")
    started = time.perf_counter()
    if resume:
        run = RunDir.open(out, write=True)
        prepared = prepare_data(config.data)
    else:
        # Inputs first: a run that cannot start leaves no folder behind (an empty folder inside
        # an image folder would become a class of every later run).
        check_inputs_outside(out, [config.data.source])
        prepared = prepare_data(config.data)
        run = RunDir.create(out, overwrite=overwrite, inputs=[config.data.source], resumable=True)
    try:
        result, val = _train(config, run, prepared, resume=resume, callbacks=callbacks)
    except TraingroundError:
        if not resume:
            run.discard()  # a start refused by a check leaves nothing behind
        raise
    test_accuracy, val_scores = None, {}
    if val is not None and any(t.kind == "regression" for t in tasks_of(val) or ()):
        # MAE and R^2 of the final model on the validation split, in the targets' own units.
        device = next(result.model.parameters()).device
        val_scores = test_task_scores(result.model, val, device=device, prefix="val")
        with open(run.metrics, "a", encoding="utf-8") as fh:  # listed in the manifest by fit()
            fh.write(json.dumps({"kind": "val_final", "step": result.steps, **val_scores}) + "\n")
    if prepared.test is not None:
        device = next(result.model.parameters()).device
        record: dict[str, Any] = {"kind": "test", "step": result.steps}
        if tasks_of(prepared.test) is None:
            logits = predict_logits(result.model, prepared.test.features, device=device)
            test_accuracy = float((logits.argmax(1) == prepared.test.labels).double().mean())
        else:
            record.update(test_task_scores(result.model, prepared.test, device=device))
            test_accuracy = record.get("test_accuracy")
        record["test_accuracy"] = test_accuracy
        with open(run.metrics, "a", encoding="utf-8") as fh:  # listed in the manifest by fit()
            fh.write(json.dumps(record) + "\n")
    return RunResult(
        run_dir=run, fit=result, data=prepared, seconds=time.perf_counter() - started, test_accuracy=test_accuracy,
        val_scores=val_scores,
    )


def _train(config: RunConfig, run: RunDir, prepared: PreparedData, *, resume: bool,
           callbacks: Sequence[Callback]) -> tuple[FitResult, Any]:
    # On resume too: config.yaml holds what the run is now asked to do (epochs may have grown).
    run.write_config(config.to_dict())
    train, val, model, loss_fn = build_training(config, prepared)
    multi = tasks_of(train) is not None
    return fit(
        model, train, val_data=val, config=config.fit, loss_fn=loss_fn, guard=config.guard, callbacks=callbacks,
        run_dir=run, resume=resume, tasks=config.tasks if multi else None,
    ), val


def build_training(config: RunConfig, prepared: PreparedData) -> tuple[IndexedDataset, IndexedDataset | None,
                                                                         torch.nn.Module, torch.nn.Module]:
    """The training and validation splits, the fresh model and the loss ``run_fit`` trains with
    (also what the lr range test and the tuner start from)."""
    train, val = prepared.train, None
    tasks = tasks_of(train)
    if config.fit.val_fraction > 0:
        # The same split fit() would take, done here so that the input standardisation
        # below sees the training part only.
        train_pos, val_pos = stratified_split(
            train.labels.numpy(), fraction=config.fit.val_fraction, seed=config.fit.seed
        )
        # imputation medians from the training part only (the model file keeps them for predict)
        train = fit_on_rows(train, train_pos) if tasks is None else fit_multitarget_on_rows(train, train_pos)
        if tasks is not None:  # regression targets standardised with the training rows' mean and std
            train = with_target_scales(train, train_pos)
        train, val = train.subset(train_pos), train.subset(val_pos)
    elif tasks is not None:
        train = with_target_scales(train, np.arange(len(train)))
    tasks = tasks_of(train)
    seed_everything(config.fit.seed)
    if tasks is None:
        model = build_model(
            config.model, input_shape=train.input_shape, num_classes=train.num_classes,
            train_features=train.features, kind=train.kind,
        )
    else:
        model = build_multitask_model(config.model, input_shape=train.input_shape,
                                      widths={t.name: t.out_features for t in tasks}, train_features=train.features,
                                      kind=train.kind, scales={t.name: t.scale for t in tasks if t.scale})
    loss_fn = run_loss(config.loss, config.data.source, train, target=config.data.target)  # type: ignore[arg-type]
    return train, val, model, loss_fn
