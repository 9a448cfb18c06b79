"""Evaluation and batched inference, without gradients."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainground.engine.batches import BatchSource


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


@torch.no_grad()
def evaluate(
    model: nn.Module, data: BatchSource, loss_fn: nn.Module, *, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``data`` (one host sync at the end)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    try:
        for positions in torch.arange(len(data)).split(batch_size):
            _, x, y = data.batch(positions, device)
            logits = model(x)
            # loss_fn returns a batch mean; weighting by the batch size gives the dataset mean.
            loss_sum += loss_fn(logits, y).float() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
            n += len(y)
    finally:
        model.train(was_training)
    loss, hits = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return {"loss": loss / max(n, 1), "accuracy": hits / max(n, 1)}
