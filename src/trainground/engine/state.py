"""What the loop knows at any moment; handed to every callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:
    from trainground.engine.config import FitConfig
    from trainground.engine.rundir import RunDir


@dataclass
class TrainState:
    """Mutable training state. Counters are exact after a resume.

    Attributes:
        step: optimizer steps taken so far (global, across epochs).
        epoch: epochs completed so far; during an epoch, the index of the current one.
        batch_in_epoch: batches of the current epoch already consumed.
        batch: the current ``(index, x, y)``, on the training device.
        logits, loss: outputs of the current forward pass (loss is the batch mean).
        epoch_metrics: after EPOCH_END, ``train_loss``, ``train_accuracy``,
            ``val_loss``, ``val_accuracy`` of that epoch (val only with a validation split).
        history: one ``epoch_metrics`` dict per finished epoch.
        stop_requested: set by a callback (at EPOCH_END) to end training after this epoch,
            e.g. early stopping; the loop still checkpoints the epoch and fires FIT_END.
    """

    model: nn.Module
    optimizer: Any
    config: FitConfig
    num_epochs: int
    steps_per_epoch: int
    run_dir: RunDir | None = None
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    batch: tuple[Tensor, Tensor, Tensor] | None = None
    logits: Tensor | None = None
    loss: Tensor | None = None
    epoch_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_requested: bool = False
    # The Guard stepping the optimizer; ``guard.last_stats`` holds the last step's tensors.
    guard: Any = None
    # Whether the last batch closed the Guard's accumulation window (the optimizer stepped or
    # the step was skipped); False on micro-batches that only accumulated.
    window_closed: bool = False
    # Extra per-step scalars (0-d device tensors) for metrics.jsonl, e.g. a multi-target run's
    # ``loss/<task>`` and ``task_grad_norm/<task>``; empty for a single-target run.
    step_extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def lr(self) -> float:
        """Learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])
