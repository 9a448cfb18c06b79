"""What ``fit`` needs per kind of task: its default loss, its in-loop metric, its prediction.

One entry per kind in a registry, so a new kind of target (e.g. ``"detection"``, a
fixed-size padded box tensor) is one ``register_task_kind`` call away and the loop, the
evaluation and ``predict`` stay as they are::

    register_task_kind("detection", TaskKind(
        metric="box_l1", higher_is_better=False,
        default_loss=lambda spec: MyDetectionLoss(),
        batch_metric=lambda out, y: per_sample_l1(out, y).sum(),
        predict=lambda out: out))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainground.data.tasks import TaskSpec
from trainground.errors import ConfigError

TaskLossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TaskKind:
    """How a kind of task is trained, scored in the loop and predicted.

    Attributes:
        metric: name of the in-loop metric (``val_<metric>/<task>`` in ``metrics.jsonl``).
        higher_is_better: the metric's direction (accuracy up, MAE down).
        default_loss: ``spec -> loss_fn(output, target)`` (a batch mean) used when the
            multi-task loss is built for you.
        batch_metric: ``(output, target) -> 0-d tensor``: the metric *summed* over the
            batch's samples (the loop divides by the sample count; no host sync).
        predict: ``output -> [N, ...]`` the prediction per sample (class id, value...).
    """

    metric: str
    higher_is_better: bool
    default_loss: Callable[[TaskSpec], TaskLossFn | nn.Module]
    batch_metric: Callable[[Tensor, Tensor], Tensor]
    predict: Callable[[Tensor], Tensor]


def _correct(output: Tensor, target: Tensor) -> Tensor:
    return (output.argmax(dim=1) == target).sum()


def _regression_output(output: Tensor, target: Tensor) -> Tensor:
    """A ``[N, 1]`` head's output against ``[N]`` targets: same shape, float."""
    return output.reshape(target.shape).float() if output.numel() == target.numel() else output.float()


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(_regression_output(output, target), target.float())


def _absolute_error(output: Tensor, target: Tensor) -> Tensor:
    err = (_regression_output(output, target) - target.float()).abs()
    return err.reshape(len(err), -1).mean(dim=1).sum() if err.ndim > 1 else err.sum()


class StandardisedMSE(nn.Module):
    """MSE in standard deviations of the target: ``mse(output, y) / std^2`` equals the MSE of a head
    trained on ``(y - mean) / std`` when the model answers ``mean + std * head`` (``TaskHeads``' scales)."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.inv_var = 1.0 / float(std) ** 2

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        return _mse(output, target) * self.inv_var


def _regression_loss(spec: TaskSpec) -> TaskLossFn | nn.Module:
    return _mse if spec.scale is None else StandardisedMSE(spec.scale[1])


def _regression_predict(output: Tensor) -> Tensor:
    return output.squeeze(1) if output.ndim == 2 and output.shape[1] == 1 else output


_KINDS: dict[str, TaskKind] = {
    "class": TaskKind("accuracy", True, lambda spec: nn.CrossEntropyLoss(), _correct,
                      lambda out: out.argmax(dim=1)),
    "regression": TaskKind("mae", False, _regression_loss, _absolute_error, _regression_predict),
}


def register_task_kind(name: str, kind: TaskKind, *, replace: bool = False) -> None:
    """Make ``TaskSpec(kind=name)`` trainable by ``fit``; ``replace=True`` to redefine a kind."""
    if name in _KINDS and not replace:
        raise ConfigError(f"task kind {name!r} is already registered; pass replace=True to redefine it")
    _KINDS[name] = kind


def task_kind(name: str) -> TaskKind:
    """The registered kind ``name``; an unknown name lists the known ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown task kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def task_kinds() -> list[str]:
    return sorted(_KINDS)


@torch.no_grad()
def batch_task_metrics(tasks: tuple[TaskSpec, ...], outputs: dict[str, Tensor],
                       targets: dict[str, Tensor]) -> Tensor:
    """``[T]`` each task's metric summed over the batch (on the device)."""
    return torch.stack([task_kind(t.kind).batch_metric(outputs[t.name], targets[t.name]).double().reshape(())
                        for t in tasks])
