"""The ``"detection"`` task kind: a padded box list per sample, trained by ``fit``.

A ``TaskSpec(name, "detection", num_classes, shape=(M, 5))`` target holds up to ``M``
objects per sample as ``(x1, y1, x2, y2, class)`` rows (class -1 for padding); the model's
output for the task is the grid layout of ``models.detection.GridDetectionHead``. The
in-loop metric is object recall at IoU 0.5 (``metrics.object_recall``): additive over
samples, which mAP is not; mAP@0.5 is computed on a held-out split after training.
The loss depends on the head's grid and stride, which a ``TaskSpec`` does not know: pass
``losses.DetectionLoss`` in the ``MultiTaskLoss``.
"""

from __future__ import annotations

from torch import Tensor

from trainground.data.tasks import TaskSpec
from trainground.engine.task_kinds import TaskKind, register_task_kind, task_kinds
from trainground.errors import ConfigError
from trainground.metrics.detection import object_recall


def _no_default_loss(spec: TaskSpec) -> None:
    raise ConfigError(f"task {spec.name!r} (detection) has no default loss: pass "
                      "MultiTaskLoss({..., name: DetectionLoss(num_classes, grid=..., stride=...)})")


def _recall_sum(output: Tensor, target: Tensor) -> Tensor:
    return object_recall(output, target).sum()


DETECTION = TaskKind(metric="object_recall", higher_is_better=True, default_loss=_no_default_loss,
                     batch_metric=_recall_sum, predict=lambda output: output)

if "detection" not in task_kinds():
    register_task_kind("detection", DETECTION)
