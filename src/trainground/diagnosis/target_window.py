"""The early-learning window for regression and detection targets, as a ``fit`` callback.

After each epoch the callback predicts every sample of the dataset (eval mode, batches of
``batch_size``) and adds to running sums each regression task's prediction and each
detection task's per-object loss; at the epoch of the lowest validation loss (the sum of the
tasks' raw validation losses, so a learned task weighting does not move it) it keeps the
window's means, and (``box_check``) each detection task's class probabilities at every labelled
box at that epoch. :meth:`EarlyTargetWindow.issues` then runs ``target_outliers`` and
``box_match`` on them.
Same reasoning as ``early_learning.EarlyLearningWindow`` for class labels: before a network
memorises, its predictions on wrong targets stay with the pattern of the clean ones.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from trainground.data.tasks import MultiTargetDataset
from trainground.diagnosis.box_match import (
    BoxIssues,
    agree_with_loss,
    agree_with_peers,
    box_label_issues,
    class_competence,
    gate_class_flags,
    located_class_probs,
)
from trainground.diagnosis.target_outliers import (
    TargetIssues,
    object_class_issues,
    object_label_issues,
    regression_target_issues,
    robust_z,
)
from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState


class EarlyTargetWindow(Callback):
    """Early-learning means of regression predictions and per-object detection losses.

    Args:
        data: the multi-target dataset being trained on (all of it: the validation share too).
        detection_losses: ``{task: loss}`` for the detection tasks, or one loss for all of them:
            an object with ``per_object(output, target)`` (and optionally ``class_margin``),
            e.g. ``losses.DetectionLoss``.
        class_check: also keep each object's class margin for ``object_class_issues``
            (off by default: with a detector whose classes are still confused it flags a
            large share of correct objects, see benchmarks/README.md).
        box_check: keep the detector's class probabilities at each labelled box at the
            window's end for ``box_match.box_label_issues`` (missing boxes, class swaps).
        abstain: which labelled boxes the box check does not judge (``box_label_issues``):
            ``"unmatched"`` (no predicted box matches them), ``"group"`` or ``"none"``.
        box_rule: ``"match"``: the box check's flags as they are; ``"agree"``: only those the
            object's early-learning loss confirms (``box_match.agree_with_loss``); ``"peers"``: the
            loss scored against the box's (class, size) peers, *missing* confirmed at z 3.5, and
            the boxes no prediction matches judged by the loss alone (``box_match.agree_with_peers``).
        batch_size: prediction batch size.

    Attributes:
        competence_images: ``[N]`` bool, the images on which the detector's class skill is
            measured for the box check's competence gate (``box_match.gate_class_flags``; pass
            the validation images, e.g. after ``fit`` from its ``val_index``); None: no gate.
    """

    def __init__(self, data: MultiTargetDataset, detection_losses: dict[str, Any] | Any,
                 *, class_check: bool = False, box_check: bool = True,
                 abstain: Literal["unmatched", "group", "none"] = "unmatched",
                 box_rule: Literal["match", "agree", "peers"] = "match", batch_size: int = 500) -> None:
        if box_rule not in ("match", "agree", "peers"):
            raise ValueError(f"box_rule must be 'match', 'agree' or 'peers', not {box_rule!r}")
        self.data, self.batch_size, self.abstain, self.box_rule = data, batch_size, abstain, box_rule
        self.regression = [t.name for t in data.tasks if t.kind == "regression"]
        detection = [t.name for t in data.tasks if t.kind == "detection"]
        losses = detection_losses if isinstance(detection_losses, dict) else dict.fromkeys(detection, detection_losses)
        self.per_object = {name: losses[name].per_object for name in detection}
        # Per-object class margins (``DetectionLoss.class_margin``), when asked for.
        self.margins = {f"{name}_class": losses[name].class_margin for name in detection} if class_check else {}
        self.box_check = box_check
        # Per detection task, at the window's end: (q [N, M, C], best IoU [N, M], background [N, K]).
        self.kept_boxes: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.best = math.inf
        self.kept: dict[str, Tensor] = {}
        self.window_epochs = 0
        self.competence_images: Tensor | None = None

    @torch.no_grad()
    def on_epoch_end(self, state: TrainState) -> None:
        model = state.model
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        n = len(self.data)
        parts: dict[str, list[Tensor]] = {}
        located: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
        for start in range(0, n, self.batch_size):
            positions = torch.arange(start, min(start + self.batch_size, n))
            _, x, y = self.data.get_batch(positions)
            out = model({k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device))
            for name in self.regression:
                parts.setdefault(name, []).append(out[name].reshape(len(positions)).float().cpu())
            for name, fn in self.per_object.items():
                parts.setdefault(name, []).append(fn(out[name], y[name].to(device)).float().cpu())
                if self.box_check:
                    located.setdefault(name, []).append(tuple(t.cpu() for t in located_class_probs(out[name], y[name].to(device))))
            for key, fn in self.margins.items():
                name = key.removesuffix("_class")
                parts.setdefault(key, []).append(fn(out[name], y[name].to(device)).float().cpu())
        model.train(was)
        epoch = {k: torch.cat(v) for k, v in parts.items()}
        self.sums = epoch if not self.sums else {k: self.sums[k] + epoch[k] for k in epoch}
        self.count += 1
        raw = [v for k, v in state.epoch_metrics.items() if k.startswith("val_loss/")]
        val = sum(raw) if raw else state.epoch_metrics.get("val_loss", math.nan)
        if not self.kept or val < self.best:  # the window ends at the lowest validation loss
            self.best = val
            self.kept = {k: v / self.count for k, v in self.sums.items()}
            self.kept_boxes = {k: tuple(torch.cat(p) for p in zip(*v, strict=True)) for k, v in located.items()}
            self.window_epochs = self.count

    def box_issues(self) -> dict[str, BoxIssues]:
        """``{detection task: BoxIssues}`` at the window's end (empty before the first epoch or when
        off), confirmed by the per-object loss under ``box_rule="agree"``, gated on the detector's
        class competence on ``competence_images`` when set."""
        out = {}
        for name, (q, best_iou, background) in self.kept_boxes.items():
            issues = box_label_issues(q, self.data.targets[name], background, best_iou, abstain=self.abstain)
            if self.box_rule == "agree":
                issues = agree_with_loss(issues, robust_z(self.kept[name]))
            elif self.box_rule == "peers":
                issues = agree_with_peers(issues, self.kept[name])
            if self.competence_images is not None:
                issues = gate_class_flags(issues, class_competence(issues, self.competence_images))
            out[name] = issues
        return out

    def results(self) -> dict[str, TargetIssues]:
        """``{task: TargetIssues}`` of the kept window (empty before the first epoch)."""
        out = {}
        for name in self.regression:
            if name in self.kept:
                out[name] = regression_target_issues(self.data.targets[name].float(), self.kept[name])
        for name in self.per_object:
            if name in self.kept:
                out[name] = object_label_issues(self.kept[name])
        for key in self.margins:
            if key in self.kept:
                out[key] = object_class_issues(self.kept[key])
        for name, boxes in self.box_issues().items():
            out[f"{name}_box"] = TargetIssues(boxes.score.float(), boxes.is_issue, boxes.objectness.float())
        return out

    def issues(self) -> dict[str, int]:
        """How many targets each task flags."""
        return {k: int(v.is_issue.sum()) for k, v in self.results().items()}
