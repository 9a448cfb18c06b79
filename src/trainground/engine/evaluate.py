"""Evaluation and batched inference, without gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from trainground.engine.batches import BatchSource
from trainground.engine.task_kinds import task_kind
from trainground.metrics.regression import r2_score


@torch.no_grad()
def predict_logits(model: nn.Module, features: Tensor, *, batch_size: int = 1024, device: torch.device | str = "cpu") -> Tensor:
    """Logits for ``features`` in eval mode, on the CPU; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        chunks = [model(features[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(features), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


# Called with each evaluated batch ``(index, x, y)`` and the model's outputs for it (``fit``'s VAL_FORWARD).
Observe = Callable[[tuple[Tensor, Any, Any], Any], None]


@torch.no_grad()
def evaluate(
    model: nn.Module, data: BatchSource, loss_fn: nn.Module, *, batch_size: int, device: torch.device,
    observe: Observe | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``data`` (one host sync at the end); ``observe`` sees
    every batch and its logits."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    try:
        for positions in torch.arange(len(data)).split(batch_size):
            batch = data.batch(positions, device)
            _, x, y = batch
            logits = model(x)
            if observe is not None:
                observe(batch, logits)
            # loss_fn returns a batch mean; weighting by the batch size gives the dataset mean.
            loss_sum += loss_fn(logits, y).float() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
            n += len(y)
    finally:
        model.train(was_training)
    loss, hits = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return {"loss": loss / max(n, 1), "accuracy": hits / max(n, 1)}


@torch.no_grad()
def predict_task_outputs(model: nn.Module, features: Tensor, *, batch_size: int = 1024,
                         device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """``{task: outputs}`` of a multi-task model for ``features`` in eval mode, on the CPU."""
    was_training = model.training
    model.eval()
    chunks: dict[str, list[Tensor]] = {}
    try:
        for i in range(0, len(features), batch_size):
            for task, out in model(features[i : i + batch_size].to(device)).items():
                chunks.setdefault(task, []).append(out.float().cpu())
    finally:
        model.train(was_training)
    return {task: torch.cat(parts) for task, parts in chunks.items()}


def test_task_scores(model: nn.Module, test: Any, *, device: torch.device | str = "cpu",
                     prefix: str = "test") -> dict[str, float]:
    """``<prefix>_<metric>/<task>`` of a multi-target split, ``<prefix>_r2/<task>`` of each regression
    task (the model's units: the original ones for ``TaskHeads`` with scales), and
    ``<prefix>_accuracy`` (mean over class tasks)."""
    outputs = predict_task_outputs(model, test.features, device=device)
    scores: dict[str, float] = {}
    accuracies = []
    n = max(len(test), 1)
    for spec in test.tasks:
        kind = task_kind(spec.kind)
        value = float(kind.batch_metric(outputs[spec.name], test.targets[spec.name])) / n
        scores[f"{prefix}_{kind.metric}/{spec.name}"] = value
        if spec.kind == "class":
            accuracies.append(value)
        elif spec.kind == "regression":
            scores[f"{prefix}_r2/{spec.name}"] = float(r2_score(outputs[spec.name], test.targets[spec.name]))
    if accuracies:
        scores[f"{prefix}_accuracy"] = sum(accuracies) / len(accuracies)
    return scores
