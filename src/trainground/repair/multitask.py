"""Multi-task training repair (Python API): rebalance the task loss weights from per-task gradient norms.

:func:`fit_multitask` trains a model whose ``forward`` returns ``{task: logits}`` on the
weighted sum of per-task cross-entropies through ``fit``'s multi-target path (the Guard, a
``MultiTaskLoss``), and measures each task's gradient norm (and the pairwise cosines) on the
shared parameters with :class:`~trainground.gradients.tasks.TaskGradients`. The rounds run in
the one round runner (``repair.rounds.run_rounds``).
:func:`repair_task_weights` runs the ``task_weights`` policy on those figures and retrains
with the weights it sets, keeping the round with the best mean validation accuracy.

::

    result = repair_task_weights(lambda: TwoHeads(64), (x, {"digit": y, "parity": y % 2}),
                                 val=(x_val, {...}), shared=lambda m: m.trunk.parameters())
    result.weights       # {"digit": 1.0, "parity": 0.011}
    result.model         # the best round's model
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainground.data.tasks import MultiTargetDataset, TaskSpec
from trainground.engine import Callback, FitConfig, RunConfig, TrainState, fit
from trainground.engine.evaluate import predict_task_outputs
from trainground.engine.multitarget import shared_parameters
from trainground.errors import DataError
from trainground.gradients import GuardConfig
from trainground.gradients.tasks import TaskGradients
from trainground.losses.multitask import MultiTaskLoss
from trainground.repair.actions import Action
from trainground.repair.plan import TrainingPlan, apply_training_actions
from trainground.repair.policy import RepairContext, run_policies_reporting
from trainground.repair.rounds import Planned, RoundOutcome, run_rounds

MultiTaskData = tuple[Tensor, Mapping[str, Tensor]]  # features [N, ...], {task: class ids [N]}


@dataclass
class MultiTaskResult:
    """One multi-task training: the model, per-task validation accuracy, per-task gradient figures."""

    model: nn.Module
    val_accuracy: dict[str, float]
    task_grad_norms: dict[str, float]
    task_grad_cos: dict[str, float]
    weights: dict[str, float]

    @property
    def mean_val_accuracy(self) -> float:
        return float(np.mean(list(self.val_accuracy.values()))) if self.val_accuracy else float("nan")


def _check(data: MultiTaskData, where: str) -> None:
    x, targets = data
    if not targets:
        raise DataError(f"{where}: no task targets")
    for task, y in targets.items():
        if len(y) != len(x):
            raise DataError(f"{where}: task {task!r} has {len(y)} targets for {len(x)} samples")


def task_correct(model: nn.Module, data: MultiTaskData, *, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """``{task: [N] 1.0 where the row is classified correctly}`` (eval mode; the mode is restored)."""
    x, targets = data
    device = next(model.parameters()).device
    outputs = predict_task_outputs(model, x, batch_size=batch_size, device=device)
    return {t: (outputs[t].argmax(dim=1) == y.cpu()).numpy().astype(float) for t, y in targets.items()}


def task_accuracy(model: nn.Module, data: MultiTaskData, *, batch_size: int = 1024) -> dict[str, float]:
    """Accuracy of each task of ``model`` on ``data`` (eval mode; the mode is restored)."""
    return {t: float(c.mean()) if c.size else 0.0 for t, c in task_correct(model, data, batch_size=batch_size).items()}


def as_dataset(data: MultiTaskData, num_classes: Mapping[str, int], *, offset: int = 0) -> MultiTargetDataset:
    """``(features, {task: class ids})`` as a :class:`MultiTargetDataset` (class tasks), indices from ``offset``."""
    x, targets = data
    tasks = tuple(TaskSpec(t, "class", int(num_classes[t])) for t in targets)
    return MultiTargetDataset(x, {t: y.long() for t, y in targets.items()},
                              torch.arange(offset, offset + len(x)), tasks)


class TaskGradientMeans(Callback):
    """Mean of the per-task gradient norms and cosines (``state.step_extras``) read every ``every`` steps."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.sums: dict[str, float] = {}
        self.readings = 0

    def on_batch_end(self, state: TrainState) -> None:
        if (state.step - 1) % self.every:
            return
        keys = [k for k in state.step_extras if k.startswith(("task_grad_norm/", "task_grad_cos/"))]
        if not keys:
            return
        values = torch.stack([state.step_extras[k].float().reshape(()) for k in keys]).tolist()  # one host sync
        for k, v in zip(keys, values, strict=True):
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.readings += 1

    def means(self, prefix: str) -> dict[str, float]:
        return {k.split("/", 1)[1]: v / max(self.readings, 1) for k, v in self.sums.items() if k.startswith(prefix)}


def fit_multitask(
    model: nn.Module, train: MultiTaskData, *, val: MultiTaskData, config: FitConfig | None = None,
    weights: Mapping[str, float] | None = None, shared: Callable[[nn.Module], Iterable[Tensor]] | None = None,
    sample_every: int = 10, guard: GuardConfig | None = None,
) -> MultiTaskResult:
    """Train ``model`` (``forward(x) -> {task: logits}``) on ``sum_t weights[t] * CE_t`` with ``fit``.

    The run goes through the engine's multi-target path: the Guard steps, per-task gradients
    come from ``TaskGradients`` (one backward per task); every ``sample_every`` steps the
    per-task norms on the shared parameters (of the weighted losses) and their cosines are
    read (one host sync) and averaged over the run.

    Args:
        model: the multi-task model.
        train, val: ``(features, {task: class ids})``.
        config: ``fit``'s options (epochs, batch size, lr, optimizer, seed).
        weights: loss weight per task (1 when missing).
        shared: ``shared(model) -> parameters`` the tasks share (norms and cosines are taken
            there); default: ``model.shared_parameters()`` if it has one, else every parameter.
        sample_every: steps between two readings of the gradient figures.
        guard: the Guard's options (``GuardConfig()`` when None).

    Returns:
        :class:`MultiTaskResult`.
    """
    _check(train, "train")
    _check(val, "val")
    config = config or FitConfig()
    targets = train[1]
    num_classes = {t: int(max(int(y.max()), int(val[1][t].max()))) + 1 for t, y in targets.items()}
    weights = {t: float((weights or {}).get(t, 1.0)) for t in targets}
    loss_fn = MultiTaskLoss(list(targets), weighting="static", weights=weights)
    handler = TaskGradients(list(model.parameters()),
                            shared=shared_parameters(model) if shared is None else list(shared(model)))
    means = TaskGradientMeans(sample_every)
    fit(model, as_dataset(train, num_classes), val_data=as_dataset(val, num_classes, offset=len(train[0])),
        config=config, loss_fn=loss_fn, tasks=handler, guard=guard, callbacks=[means])
    return MultiTaskResult(model, task_accuracy(model, val), means.means("task_grad_norm/"),
                           means.means("task_grad_cos/"), weights)


@dataclass
class MultiTaskRepairResult:
    """Every round of :func:`repair_task_weights` and the best one (by mean validation accuracy)."""

    rounds: list[MultiTaskResult]
    actions: list[tuple[int, Action]]
    best_round: int
    stopped: str
    test_accuracy: list[dict[str, float] | None] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        return self.rounds[self.best_round].model

    @property
    def weights(self) -> dict[str, float]:
        return self.rounds[self.best_round].weights


def repair_task_weights(
    build_model: Callable[[], nn.Module], train: MultiTaskData, *, val: MultiTaskData, test: MultiTaskData | None = None,
    config: FitConfig | None = None, weights: Mapping[str, float] | None = None,
    shared: Callable[[nn.Module], Iterable[Tensor]] | None = None, max_rounds: int = 2,
) -> MultiTaskRepairResult:
    """Train, measure per-task gradient norms, rebalance the task weights, retrain; keep the best round.

    The ``task_weights`` policy acts when one task's gradient norm on the shared parameters
    is >= 10x another's; the loop stops when it does not, after ``max_rounds`` repaired
    rounds, or when a round is not significantly better than the kept one (``repair.selection``:
    the paired sign test on each validation row's mean correctness over the tasks).
    ``build_model()`` is called after ``torch.manual_seed(config.seed)`` in every round.

    Returns:
        :class:`MultiTaskRepairResult` (``.model``, ``.weights`` of the best round; ``test``
        accuracies are reported per round, never used to choose).
    """
    config = config or FitConfig()
    trainer = MultiTaskRounds(build_model, train, val=val, test=test, config=config, weights=weights, shared=shared)
    rounds = run_rounds(trainer, max_rounds=max_rounds)
    results = [o.payload for o in rounds.outcomes]
    return MultiTaskRepairResult([r for r, _ in results], rounds.actions, rounds.best, rounds.stopped,
                                 [test_acc for _, test_acc in results])


class MultiTaskRounds:
    """The multi-task repair as a :class:`~trainground.repair.rounds.Trainer`: a round is a
    :func:`fit_multitask`; planning runs the ``task_weights`` policy on its gradient figures."""

    def __init__(self, build_model: Callable[[], nn.Module], train: MultiTaskData, *, val: MultiTaskData,
                 test: MultiTaskData | None, config: FitConfig, weights: Mapping[str, float] | None,
                 shared: Callable[[nn.Module], Iterable[Tensor]] | None) -> None:
        self.build_model, self.train_data, self.val, self.test = build_model, train, val, test
        self.config, self.shared = config, shared
        self.plan_ = TrainingPlan(RunConfig(fit=config), extra={"task_weights": dict(weights or {})})

    def train(self, k: int) -> RoundOutcome:
        torch.manual_seed(self.config.seed)
        result = fit_multitask(self.build_model(), self.train_data, val=self.val, config=self.config,
                               weights=self.plan_.extra["task_weights"], shared=self.shared)
        test = task_accuracy(result.model, self.test) if self.test is not None else None
        scores = np.mean(list(task_correct(result.model, self.val).values()), axis=0)
        metrics = {"round": k, "val_accuracy": result.mean_val_accuracy, "weights": result.weights}
        self.last = result
        return RoundOutcome(scores, metrics, (result, test))

    def plan(self, k: int, last: RoundOutcome) -> Planned:
        context = RepairContext(round=k - 1, data=None, config=self.plan_.config,  # type: ignore[arg-type]
                                extra=_extra(self.last))
        chosen, skipped = run_policies_reporting(context, ["task_weights"])
        if chosen:
            self.plan_ = apply_training_actions(self.plan_, chosen)
        return Planned(chosen, {"skipped_policies": skipped}, f"the task gradient norms of round {k - 1} are balanced")


def _extra(result: MultiTaskResult) -> dict[str, Any]:
    return {"task_grad_norms": result.task_grad_norms, "task_grad_cos": result.task_grad_cos,
            "task_weights": result.weights}
