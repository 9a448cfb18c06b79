"""The ``loss:`` section of a run config and the factory that turns it into a loss module."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from torch import Tensor, nn

from trainground.bounds import FRACTION, NON_NEGATIVE, POSITIVE
from trainground.errors import ConfigError
from trainground.losses.class_weights import class_weights_from_labels
from trainground.losses.focal import FocalLoss
from trainground.losses.hierarchical import HierarchicalCrossEntropy
from trainground.losses.label_smoothing import check_smoothing
from trainground.losses.multitask import MultiTaskLoss
from trainground.losses.sample_weights import SampleWeights
from trainground.losses.weighted_ce import WeightedCrossEntropy

LOSSES = ("ce", "weighted_ce", "focal", "hierarchical")


@dataclass
class EventWeight:
    """Samples meeting a condition on the table's columns count ``weight`` times in the loss."""

    # A pandas expression on the input table's columns (``DataFrame.eval``), e.g. "severity >= 4"
    # or "fault == 'inner_race' and load > 0.8"; label columns may be used (it is training data).
    when: str = ""
    # How many times such a sample counts (a critical event that must not be missed: 5-20).
    weight: Annotated[float, NON_NEGATIVE] = 10.0


@dataclass
class HierarchyConfig:
    """Fine classes grouped under coarse ones (``loss.name: hierarchical``)."""

    # The fine task (a multi-target run); None: the run's single target.
    task: str | None = None
    # A column of the table holding each row's coarse label (each fine class must sit under one coarse class)...
    coarse_column: str | None = None
    # ...or a CSV file with columns "fine,coarse" mapping every fine label to its coarse label.
    coarse_file: str | None = None
    # Weight of the coarse term (lambda); 1 weighs a coarse mistake like a fine one.
    coarse_weight: Annotated[float, NON_NEGATIVE] = 1.0


@dataclass
class LossConfig:
    """Which single-task loss ``fit`` trains with. Each field says when to change it."""

    # "ce": plain cross-entropy; "weighted_ce": classes weighted by `weighting`;
    # "focal": focal loss (Lin et al. 2017), per-class alpha from `weighting` if set;
    # "hierarchical": CE plus a coarse-level CE over groups of classes (see `hierarchy`; the other
    # tasks of a multi-target run get ce, or weighted_ce when `weighting` is set).
    name: Literal["ce", "weighted_ce", "focal", "hierarchical"] = "ce"
    # Class weights from the training labels' counts: "inverse" 1/n, "inverse_sqrt" 1/sqrt(n),
    # "effective_number" (Cui et al. 2019). Required by weighted_ce, optional for focal, not for ce.
    weighting: Literal["inverse", "inverse_sqrt", "effective_number"] | None = None
    # Effective-number hyper-parameter in [0, 1); 0.999 is Cui et al.'s usual choice for small data.
    beta: Annotated[float, FRACTION] = 0.999
    # Focal focusing parameter (focal only); the paper's 2 is a robust default.
    gamma: Annotated[float, NON_NEGATIVE] | None = None
    # Share of the target mass spread uniformly over the classes (ce / weighted_ce); 0.1 is common.
    label_smoothing: Annotated[float, FRACTION] = 0.0
    # Multi-target runs: how the task losses are combined. "static": fixed `task_weights` (1 each by
    # default: the summed loss); "uncertainty": learned (Kendall et al. 2018); "dwa": from each task's
    # loss trend over the last two epochs (Liu et al. 2019). (`weighting` above is the class weights.)
    task_weighting: Literal["static", "uncertainty", "dwa"] = "static"
    # Static weight per task name (tasks not named get 1).
    task_weights: dict[str, float] | None = None
    # DWA softness; the paper's 2.
    dwa_temperature: Annotated[float, POSITIVE] = 2.0
    # Event weights: rows meeting a condition count more (applied in training, not in validation).
    events: tuple[EventWeight, ...] = ()
    # Coarse grouping of the classes, for name: hierarchical.
    hierarchy: HierarchyConfig | None = None

    def validate(self) -> LossConfig:
        """Raise ``ConfigError`` for contradictory or out-of-range options; return self."""
        if self.name not in LOSSES:
            raise ConfigError(f"loss.name: unknown loss {self.name!r}; known: {', '.join(LOSSES)}")
        if self.name == "weighted_ce" and self.weighting is None:
            raise ConfigError("loss.weighting is required for weighted_ce (inverse, inverse_sqrt or effective_number)")
        if self.name == "hierarchical":
            h = self.hierarchy
            if h is None or (h.coarse_column is None) == (h.coarse_file is None):
                raise ConfigError("loss.name hierarchical needs loss.hierarchy with one of coarse_column or coarse_file")
            if self.label_smoothing:
                raise ConfigError("loss.label_smoothing is not supported with hierarchical")
        elif self.hierarchy is not None:
            raise ConfigError(f"loss.hierarchy is an option of name: hierarchical, but loss.name is {self.name!r}")
        for k, event in enumerate(self.events):
            if not event.when.strip():
                raise ConfigError(f"loss.events[{k}].when: a condition on the table's columns is required")
        if self.name == "ce" and self.weighting is not None:
            raise ConfigError("loss.weighting needs name: weighted_ce or focal; plain ce has no class weights")
        if self.gamma is not None and self.name != "focal":
            raise ConfigError(f"loss.gamma is a focal-loss option, but loss.name is {self.name!r}")
        if self.gamma is not None and self.gamma < 0:
            raise ConfigError(f"loss.gamma must be >= 0, got {self.gamma}")
        if self.name == "focal" and self.label_smoothing:
            raise ConfigError("loss.label_smoothing is not supported with focal; use ce or weighted_ce")
        if not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"loss.beta must be in [0, 1), got {self.beta}")
        check_smoothing(self.label_smoothing)
        return self


def build_loss(
    config: LossConfig, train_labels: Tensor | np.ndarray | None = None, *, num_classes: int | None = None,
    sample_weights: SampleWeights | None = None, tree: Mapping[int, Hashable] | None = None,
) -> nn.Module:
    """The loss module ``config`` describes, with class weights counted on ``train_labels``.

    Args:
        config: the ``loss:`` section.
        train_labels: ``[N]`` class ids of the training split (never validation or test), needed
            when ``config.weighting`` is set.
        num_classes: number of classes (default: the largest label + 1).
        sample_weights: event weights keyed by input index (from ``config.events``), or None.
        tree: ``{fine class id: coarse label}`` for ``hierarchical``.
    """
    config.validate()
    return _single_loss(config, config.name, train_labels, num_classes, sample_weights, tree)


def _single_loss(config: LossConfig, name: str, train_labels: Tensor | np.ndarray | None, num_classes: int | None,
                 sample_weights: SampleWeights | None, tree: Mapping[int, Hashable] | None) -> nn.Module:
    weight = None
    if config.weighting is not None:
        if train_labels is None:
            raise ConfigError(f"loss.weighting {config.weighting!r} needs the training labels to count classes")
        labels = np.asarray(train_labels)
        classes = num_classes if num_classes is not None else int(labels.max()) + 1
        weight = class_weights_from_labels(labels, classes, scheme=config.weighting, beta=config.beta)
    if name == "hierarchical":
        if tree is None:
            raise ConfigError("loss.name hierarchical: the coarse grouping (loss.hierarchy) was not resolved")
        hierarchy = config.hierarchy or HierarchyConfig()
        return HierarchicalCrossEntropy(tree, num_fine=num_classes, coarse_weight=hierarchy.coarse_weight,
                                        sample_weights=sample_weights)
    if name == "ce" and sample_weights is None:
        # PyTorch's own module: default runs stay bit-identical to runs without a loss section.
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if name == "focal":
        return FocalLoss(2.0 if config.gamma is None else config.gamma, alpha=weight, sample_weights=sample_weights)
    return WeightedCrossEntropy(weight, label_smoothing=config.label_smoothing, sample_weights=sample_weights)


def build_task_loss(
    config: LossConfig, tasks: Sequence[Any], train_targets: Mapping[str, Tensor | np.ndarray], *,
    sample_weights: SampleWeights | None = None, tree: Mapping[int, Hashable] | None = None,
    other_losses: Mapping[str, Any] | None = None,
) -> MultiTaskLoss:
    """A :class:`MultiTaskLoss` over ``tasks`` (``data.TaskSpec``): each class task gets the loss
    ``config`` names (class weights counted on that task's training targets), the hierarchy's task
    the hierarchical CE, tasks of other kinds the loss in ``other_losses``; combined by ``config.task_weighting``.

    Args:
        config: the ``loss:`` section.
        tasks: the tasks, in the model's output order.
        train_targets: ``{task: [N] training targets}`` (never validation or test).
        sample_weights: event weights keyed by input index, applied to every task.
        tree: the hierarchy task's ``{fine id: coarse label}``.
        other_losses: ``{task: loss_fn}`` of the tasks that are not class tasks (their kind's default).
    """
    config.validate()
    hierarchy_task = None
    if config.name == "hierarchical":
        hierarchy_task = (config.hierarchy.task if config.hierarchy and config.hierarchy.task else None) or next(
            (t.name for t in tasks if t.kind == "class"), None)
        if hierarchy_task not in [t.name for t in tasks]:
            raise ConfigError(f"loss.hierarchy.task: no task {hierarchy_task!r}; tasks: {[t.name for t in tasks]}")
    table: dict[str, Any] = {}
    for task in tasks:
        if task.kind != "class":
            if task.name not in (other_losses or {}):
                raise ConfigError(f"loss: task {task.name!r} of kind {task.kind!r} needs its loss in other_losses")
            table[task.name] = other_losses[task.name]  # type: ignore[index]
            continue
        name = config.name
        if name == "hierarchical" and task.name != hierarchy_task:
            name = "weighted_ce" if config.weighting is not None else "ce"
        table[task.name] = _single_loss(config, name, train_targets[task.name], task.num_classes, sample_weights,
                                        tree if task.name == hierarchy_task else None)
    options: dict[str, Any] = {}
    if config.task_weighting == "static" and config.task_weights:
        options["weights"] = dict(config.task_weights)
    elif config.task_weights:
        raise ConfigError("loss.task_weights are static weights; they need task_weighting: static")
    if config.task_weighting == "dwa":
        options["temperature"] = config.dwa_temperature
    return MultiTaskLoss(table, weighting=config.task_weighting, **options)
