"""The early-learning window for regression and detection targets, as a ``fit`` callback.

After each epoch the callback predicts every sample of the dataset (eval mode, batches of
``batch_size``) and adds to running sums each regression task's prediction and each
detection task's per-object loss; at the epoch of the lowest validation loss (the sum of the
tasks' raw validation losses, so a learned task weighting does not move it) it keeps the
window's means. :meth:`EarlyTargetWindow.issues` then runs ``target_outliers`` on them.
Same reasoning as ``early_learning.EarlyLearningWindow`` for class labels: before a network
memorises, its predictions on wrong targets stay with the pattern of the clean ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from trainground.data.tasks import MultiTargetDataset
from trainground.diagnosis.target_outliers import (
    TargetIssues,
    object_label_issues,
    regression_target_issues,
)
from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState

PerObjectLoss = Callable[[Tensor, Tensor], Tensor]  # (output, padded target) -> [N, M], NaN for padding


class EarlyTargetWindow(Callback):
    """Early-learning means of regression predictions and per-object detection losses.

    Args:
        data: the multi-target dataset being trained on (all of it: the validation share too).
        detection_losses: ``{task: per_object(output, target)}`` for the detection tasks, e.g.
            ``DetectionLoss.per_object``; a single callable applies to every detection task.
        batch_size: prediction batch size.
    """

    def __init__(self, data: MultiTargetDataset, detection_losses: dict[str, PerObjectLoss] | object,
                 *, batch_size: int = 500) -> None:
        self.data, self.batch_size = data, batch_size
        self.regression = [t.name for t in data.tasks if t.kind == "regression"]
        detection = [t.name for t in data.tasks if t.kind == "detection"]
        if isinstance(detection_losses, dict):
            self.per_object = {name: detection_losses[name] for name in detection}
        else:
            self.per_object = {name: detection_losses.per_object for name in detection}  # type: ignore[attr-defined]
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.best = math.inf
        self.kept: dict[str, Tensor] = {}
        self.window_epochs = 0

    @torch.no_grad()
    def on_epoch_end(self, state: TrainState) -> None:
        model = state.model
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        n = len(self.data)
        parts: dict[str, list[Tensor]] = {}
        for start in range(0, n, self.batch_size):
            positions = torch.arange(start, min(start + self.batch_size, n))
            _, x, y = self.data.get_batch(positions)
            out = model({k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device))
            for name in self.regression:
                parts.setdefault(name, []).append(out[name].reshape(len(positions)).float().cpu())
            for name, fn in self.per_object.items():
                parts.setdefault(name, []).append(fn(out[name], y[name].to(device)).float().cpu())
        model.train(was)
        epoch = {k: torch.cat(v) for k, v in parts.items()}
        self.sums = epoch if not self.sums else {k: self.sums[k] + epoch[k] for k in epoch}
        self.count += 1
        raw = [v for k, v in state.epoch_metrics.items() if k.startswith("val_loss/")]
        val = sum(raw) if raw else state.epoch_metrics.get("val_loss", math.nan)
        if not self.kept or val < self.best:  # the window ends at the lowest validation loss
            self.best = val
            self.kept = {k: v / self.count for k, v in self.sums.items()}
            self.window_epochs = self.count

    def results(self) -> dict[str, TargetIssues]:
        """``{task: TargetIssues}`` of the kept window (empty before the first epoch)."""
        out = {}
        for name in self.regression:
            if name in self.kept:
                out[name] = regression_target_issues(self.data.targets[name].float(), self.kept[name])
        for name in self.per_object:
            if name in self.kept:
                out[name] = object_label_issues(self.kept[name])
        return out

    def issues(self) -> dict[str, int]:
        """How many targets each task flags."""
        return {k: int(v.is_issue.sum()) for k, v in self.results().items()}
