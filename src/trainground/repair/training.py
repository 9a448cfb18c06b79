"""Training repair for a user's own model: train, diagnose, act on the training findings, retrain.

``repair_training(build_model, data, val_data=...)`` is the training half of the repair loop
for runs whose data are fine but whose training is not (too high an lr, dead ReLUs, spikes):
each round trains with ``fit`` and a ``DiagnosisCallback``, the training policies turn the
findings into actions, :func:`~trainground.repair.plan.apply_training_actions` turns them
into the next round's plan, and the best round by validation accuracy is kept (the test
data, when given, are only reported). The round pieces (:func:`train_round`,
:func:`round_context`, :func:`next_plan`) are small so the data repair loop can reuse them.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainground.data import IndexedDataset
from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig, Finding
from trainground.engine import Callback, FitConfig, RunConfig, fit, predict_logits
from trainground.engine.atomic import atomic_write_text
from trainground.engine.checkpoint import read_checkpoint
from trainground.engine.fit_setup import make_optimizer, resolve_device
from trainground.gradients import ActionLog
from trainground.jsonsafe import json_safe
from trainground.repair.actions import Action
from trainground.repair.output import keep_model
from trainground.repair.plan import TrainingPlan, apply_training_actions, prepare_model
from trainground.repair.policy import RepairContext, run_policies_reporting
from trainground.repair.result import repair_metrics
from trainground.repair.rounds import Planned, RoundOutcome, run_rounds

ModelFactory = Callable[[IndexedDataset], nn.Module]
OptimizerFactory = Callable[[nn.Module, FitConfig], torch.optim.Optimizer]


@dataclass
class RoundResult:
    """One training round.

    Attributes:
        round: 0 for the run as given, k for the k-th repaired run.
        val_accuracy, test_accuracy: accuracy at the end of training (test: reported only).
        trainings: epochs trained / epochs of a full training (a round resumed from a
            checkpoint trains only the epochs after it).
        applied: the actions that built this round's plan from the previous one.
        findings: the training diagnosis of this round.
        plan: what this round trained with.
        run_dir: its run directory (None when the rounds ran in a temporary folder).
    """

    round: int
    val_accuracy: float | None
    test_accuracy: float | None
    trainings: float
    applied: list[Action]
    findings: list[Finding]
    plan: TrainingPlan
    run_dir: Path | None = None
    comparison: dict[str, Any] | None = None
    skipped_policies: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``metrics.json`` entry of the round (the repair-folder contract, ``repair.result``)."""
        return {"round": self.round, "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
                "trainings": self.trainings, "actions": dict(Counter(a.action for a in self.applied)),
                "run_dir": f"round_{self.round}", "comparison": self.comparison,
                "skipped_policies": self.skipped_policies}


@dataclass
class TrainingRepairResult:
    """What :func:`repair_training` returns: every round, the best one and its model."""

    rounds: list[RoundResult]
    best_round: int
    model: nn.Module
    stopped: str
    out: Path | None = None

    @property
    def best(self) -> RoundResult:
        return self.rounds[self.best_round]

    @property
    def plan(self) -> TrainingPlan:
        return self.best.plan

    @property
    def actions(self) -> list[tuple[int, Action]]:
        """Every applied action with the round it built."""
        return [(r.round, a) for r in self.rounds for a in r.applied]

    @property
    def trainings(self) -> float:
        return sum(r.trainings for r in self.rounds)

    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` of the repair folder (the shape of ``repair.result``, plus ``trainings``)."""
        return {**repair_metrics("training", [r.summary() for r in self.rounds], self.best_round, self.stopped),
                "trainings": self.trainings}


@dataclass
class RoundRun:
    """A trained round before it is summarised: its model, data and the fit's result."""

    model: nn.Module
    train: IndexedDataset
    result: Any
    diagnosis: DiagnosisCallback
    trainings: float
    extra: dict[str, Any] = field(default_factory=dict)


def _without(data: IndexedDataset, skip: Sequence[int]) -> IndexedDataset:
    if not skip:
        return data
    keep = np.flatnonzero(~np.isin(data.index.numpy(), np.asarray(list(skip))))
    return data.subset(keep)


def train_round(plan: TrainingPlan, build_model: ModelFactory, data: IndexedDataset, *, val_data: IndexedDataset,
                run_dir: Path, build_optimizer: OptimizerFactory | None = None, loss_fn: nn.Module | None = None,
                callbacks: Sequence[Callback] = (), diagnosis: DiagnosisConfig | None = None) -> RoundRun:
    """Train one round as ``plan`` says: seed, build, resume from its checkpoint (if any), edit, fit.

    Honours ``plan.extra["resume_from"]`` (load that checkpoint's model and optimizer state,
    train the epochs that remain, with the plan's lr) and ``plan.extra["skip_samples"]``
    (left out of the training data). Every epoch-end checkpoint is kept in ``run_dir`` so a
    later rollback can return to any of them.
    """
    fit_config = copy.deepcopy(plan.config.fit)
    train = _without(data, plan.extra.get("skip_samples", ()))
    torch.manual_seed(fit_config.seed)
    model = build_model(train)
    resume = plan.extra.get("resume_from")
    checkpoint = None
    if resume:
        checkpoint = read_checkpoint(Path(resume["checkpoint"]))  # verified against its checksum
        model.load_state_dict(checkpoint["model"])
        fit_config.epochs = max(1, fit_config.epochs - int(checkpoint["epoch"]))
    model = prepare_model(plan, model)
    full_epochs = plan.config.fit.epochs
    # The rollback policy resumes from the last epoch-end checkpoint before a spike: keep them all.
    fit_config.keep_checkpoints = max(fit_config.keep_checkpoints, fit_config.epochs + 1)
    fit_config.checkpoint_seconds = 0.0
    # On the training device before the optimizer exists: a restored optimizer state is cast to
    # its parameters' device when loaded, and fit moving the model later would leave it behind.
    model.to(resolve_device(fit_config.device))
    optimizer = build_optimizer(model, fit_config) if build_optimizer else make_optimizer(fit_config, model.parameters())
    if checkpoint is not None:
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError) as err:  # a model edit changed the parameters: start the optimizer afresh
            warnings.warn(f"repair: optimizer state of {resume['checkpoint']} not restored ({err})", RuntimeWarning,
                          stacklevel=2)
        for group in optimizer.param_groups:
            group["lr"] = fit_config.lr  # the plan's lr, not the one the checkpoint was taken with
    # No datasets for the distribution-shift check: a shifted split is a data question no
    # training policy acts on, and its domain classifier costs more than a small training.
    watcher = DiagnosisCallback(diagnosis or DiagnosisConfig())
    result = fit(model, train, config=fit_config, val_data=val_data, loss_fn=loss_fn, optimizer=optimizer,
                 callbacks=[watcher, *callbacks], run_dir=run_dir, guard=copy.deepcopy(plan.config.guard))
    return RoundRun(model, train, result, watcher, fit_config.epochs / full_epochs)


def dead_unit_ids(model: nn.Module, data: IndexedDataset, layers: Sequence[str], *,
                  batch_size: int = 512) -> dict[str, list[int]]:
    """Units (dim 1) of each activation module in ``layers`` that output > 0 for no sample of
    ``data`` (eval mode): the per-unit form of the ``dead_units`` check's fraction."""
    modules = {name: m for name, m in model.named_modules() if name in set(layers)}
    active: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(module: nn.Module, inputs: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.ndim >= 2:
                seen = (out.detach() > 0).transpose(0, 1).reshape(out.shape[1], -1).any(dim=1)
                active[name] = seen if name not in active else active[name] | seen
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    try:
        device = next(model.parameters()).device
        predict_logits(model, data.features, batch_size=batch_size, device=device)
    finally:
        for h in handles:
            h.remove()
    return {n: torch.nonzero(~a).flatten().tolist() for n, a in active.items()}


def correct_rows(model: nn.Module, data: IndexedDataset) -> np.ndarray:
    """``[N]`` 1.0 where ``model`` classifies the row of ``data`` correctly, else 0.0."""
    device = next(model.parameters()).device
    logits = predict_logits(model, data.features, device=device)
    return (logits.argmax(dim=1) == data.labels).numpy().astype(float)


def accuracy(model: nn.Module, data: IndexedDataset | None) -> float | None:
    """Accuracy of ``model`` on ``data`` (None without data)."""
    if data is None or len(data) == 0:
        return None
    device = next(model.parameters()).device
    logits = predict_logits(model, data.features, device=device)
    return float((logits.argmax(dim=1) == data.labels).float().mean())


def round_context(round_: int, plan: TrainingPlan, run: RoundRun, *, run_dir: Path | None,
                  history: Sequence[dict[str, Any]]) -> RepairContext:
    """The :class:`RepairContext` the training policies read after a round."""
    findings = list(run.diagnosis.findings)
    dead = [f.subject.removeprefix("layer:") for f in findings if f.check == "dead_units"]
    extra = {"plan": plan, "train_index": run.result.train_index, "resumable": True,
             "dead_unit_ids": dead_unit_ids(run.model, run.train, dead) if dead else {}, **run.extra}
    return RepairContext(round=round_, data=run.train, findings=findings, history=list(history), config=plan.config,
                         run_dir=run_dir, extra=extra)


def next_plan(plan: TrainingPlan, context: RepairContext,
              policies: Sequence[str] | None = None) -> tuple[TrainingPlan, list[Action], dict[str, str]]:
    """Run the training policies on a round's context and apply their actions to its plan;
    also return the policies skipped (``{name: why}``)."""
    actions, skipped = run_policies_reporting(context, policies, kind="training")
    return apply_training_actions(plan, actions), actions, skipped


def _as_plan(config: RunConfig | FitConfig | TrainingPlan | None) -> TrainingPlan:
    if isinstance(config, TrainingPlan):
        return config
    if isinstance(config, FitConfig):
        return TrainingPlan(RunConfig(fit=copy.deepcopy(config)))
    return TrainingPlan(copy.deepcopy(config) if config is not None else RunConfig())


def repair_training(
    build_model: ModelFactory,
    data: IndexedDataset,
    *,
    val_data: IndexedDataset,
    config: RunConfig | FitConfig | TrainingPlan | None = None,
    max_rounds: int = 3,
    policies: Sequence[str] | None = None,
    test_data: IndexedDataset | None = None,
    out: str | Path | None = None,
    build_optimizer: OptimizerFactory | None = None,
    loss_fn: nn.Module | None = None,
    callbacks: Callable[[TrainingPlan], Sequence[Callback]] | None = None,
    diagnosis: DiagnosisConfig | None = None,
) -> TrainingRepairResult:
    """Train, diagnose, repair the training, retrain; keep the round with the best validation accuracy.

    Round 0 trains as given. After each round the training policies (all registered ones of
    kind "training", or ``policies``) read its findings; their actions give the next round's
    plan. The loop stops when no policy acts, after ``max_rounds`` repaired rounds, or when a
    round does not beat the best validation accuracy so far (its changes did not help).

    Args:
        build_model: ``build_model(train_data) -> nn.Module``; called once per round after
            ``torch.manual_seed(fit.seed)``, so every round starts from the same initialisation.
        data: training data (``IndexedDataset``).
        val_data: validation data: the only data that choose the best round.
        config: a ``RunConfig`` (its ``fit`` and ``guard`` sections are used), a ``FitConfig``
            (default Guard), or a ready ``TrainingPlan``.
        max_rounds: repaired rounds at most (trainings = up to ``max_rounds + 1``).
        policies: names of the training policies to run (default: all).
        test_data: reported per round, never used to choose.
        out: repair folder (``round_k/`` run directories, ``actions.jsonl``, ``metrics.json``,
            ``config.yaml``); None keeps the rounds in a temporary folder that is removed.
            An action's ``actions.jsonl`` line has ``step`` = the round that trained with it
            (chosen from the diagnosis of the round before).
        build_optimizer: ``build_optimizer(model, fit_config)``; must read ``fit_config.lr``
            (``set_lr`` changes it). Default: the optimizer ``FitConfig`` names.
        loss_fn: the training loss (cross-entropy by default).
        callbacks: ``callbacks(plan)``: extra callbacks for a round (fresh ones per round; a
            round resumed from a checkpoint counts its steps from 0, the checkpoint's step is
            ``plan.extra["resume_from"]["step"]``).
        diagnosis: the diagnosis options (default ``DiagnosisConfig()``: checks at the end).

    Returns:
        :class:`TrainingRepairResult`; ``.model`` is the best round's model.
    """
    plan = _as_plan(config)
    if out is not None:
        from trainground.engine import RunDir

        folder = RunDir.create(out).path  # new or empty; its manifest lists what the repair writes
        RunDir(folder).record("actions.jsonl")
        _write_config(folder, plan, max_rounds, policies)
        return _repair(plan, build_model, data, val_data, test_data, folder, max_rounds, policies, build_optimizer,
                       loss_fn, callbacks, diagnosis, keep=True)
    with tempfile.TemporaryDirectory(prefix="trainground-repair-") as tmp:
        return _repair(plan, build_model, data, val_data, test_data, Path(tmp), max_rounds, policies, build_optimizer,
                       loss_fn, callbacks, diagnosis, keep=False)


def _repair(plan, build_model, data, val_data, test_data, folder, max_rounds, policies, build_optimizer, loss_fn,
            callbacks, diagnosis, *, keep: bool) -> TrainingRepairResult:
    log = ActionLog(folder / "actions.jsonl") if keep else None
    if log is not None:
        log.path.touch()  # the repair folder always has one, empty when nothing was repaired
    trainer = TrainingRounds(plan, build_model, data, val_data=val_data, test_data=test_data, folder=folder,
                             policies=policies, build_optimizer=build_optimizer, loss_fn=loss_fn, callbacks=callbacks,
                             diagnosis=diagnosis, keep=keep)
    rounds = run_rounds(trainer, max_rounds=max_rounds, log=log)
    results = []
    for outcome in rounds.outcomes:
        result, _ = outcome.payload
        result.comparison = outcome.metrics.get("comparison")
        result.skipped_policies = outcome.metrics.get("skipped_policies", {})
        results.append(result)
    result = TrainingRepairResult(results, rounds.best, rounds.outcomes[rounds.best].payload[1], rounds.stopped,
                                  folder if keep else None)
    if keep:
        atomic_write_text(folder / "metrics.json", json.dumps(json_safe(result.metrics()), indent=2) + "\n")
        keep_model(folder, rounds.best)
    return result


class TrainingRounds:
    """The training repair as a :class:`~trainground.repair.rounds.Trainer`: a round is a ``fit``
    with the training diagnosis (resumable from its checkpoints); planning runs the training
    policies on its findings and applies their actions to the plan."""

    def __init__(self, plan: TrainingPlan, build_model: ModelFactory, data: IndexedDataset, *,
                 val_data: IndexedDataset, test_data: IndexedDataset | None, folder: Path,
                 policies: Sequence[str] | None, build_optimizer: OptimizerFactory | None, loss_fn: nn.Module | None,
                 callbacks: Callable[[TrainingPlan], Sequence[Callback]] | None, diagnosis: DiagnosisConfig | None,
                 keep: bool) -> None:
        self.plan_, self.build_model, self.data, self.val_data, self.test_data = plan, build_model, data, val_data, test_data
        self.folder, self.policies, self.build_optimizer, self.loss_fn = folder, policies, build_optimizer, loss_fn
        self.callbacks, self.diagnosis, self.keep = callbacks, diagnosis, keep
        self.applied: list[Action] = []
        self.history: list[dict[str, Any]] = []

    def train(self, k: int) -> RoundOutcome:
        plan, run_dir = self.plan_, self.folder / f"round_{k}"
        run = train_round(plan, self.build_model, self.data, val_data=self.val_data, run_dir=run_dir,
                          build_optimizer=self.build_optimizer, loss_fn=self.loss_fn,
                          callbacks=self.callbacks(plan) if self.callbacks else (), diagnosis=self.diagnosis)
        result = RoundResult(k, run.result.final.get("val_accuracy"), accuracy(run.model, self.test_data),
                             run.trainings, self.applied, list(run.diagnosis.findings), plan,
                             run_dir if self.keep else None)
        self.last, self.run_dir = run, run_dir
        self.history.append(result.summary())
        return RoundOutcome(correct_rows(run.model, self.val_data), result.summary(), (result, run.model))

    def plan(self, k: int, last: RoundOutcome) -> Planned:
        context = round_context(k - 1, self.plan_, self.last, run_dir=self.run_dir, history=self.history)
        self.plan_, self.applied, skipped = next_plan(self.plan_, context, self.policies)
        return Planned(self.applied, {"skipped_policies": skipped},
                       f"no training finding of round {k - 1} called for an action")


def _write_config(folder: Path, plan: TrainingPlan, max_rounds: int, policies: Sequence[str] | None) -> None:
    from trainground.engine import RunDir

    config = plan.config.to_dict()
    config["repair"] = {"kind": "training", "max_rounds": max_rounds, "policies": list(policies) if policies else None}
    RunDir(folder).write_config(config)


__all__ = ["RoundResult", "RoundRun", "TrainingRepairResult", "accuracy", "dead_unit_ids", "next_plan",
           "repair_training", "round_context", "train_round"]
