"""Multi-task cross-entropy: one loss per head, combined by a task weighting."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from trainground.errors import ConfigError
from trainground.losses.sample_weights import loss_for_batch
from trainground.losses.task_weighting import WeightingName, make_weighting

TaskLoss = Callable[[Tensor, Tensor], Tensor]


class MultiTaskLoss(nn.Module):
    """Per-task losses of a model with several heads, weighted into one objective.

    ``losses(outputs, targets)`` returns the *weighted* per-task losses, the input of
    ``gradients.TaskGradients.backward`` (per-task norms, conflicts, clipping, PCGrad);
    ``forward`` returns their sum, for a plain ``loss.backward()``.

    Args:
        tasks: task names in order, or ``{name: loss_fn(logits, target)}`` (cross-entropy
            for a name given without a loss; any loss of this package works, e.g. focal).
        weighting: ``"static"``, ``"uncertainty"`` (learned; pass this module's parameters
            to the optimizer) or ``"dwa"`` (call :meth:`end_epoch` after each epoch), or a
            weighting module from ``task_weighting``.
        **options: options of the named weighting (``weights``, ``init``, ``temperature``).
    """

    def __init__(
        self,
        tasks: Sequence[str] | Mapping[str, TaskLoss | None],
        *,
        weighting: WeightingName | nn.Module = "static",
        **options: float | Mapping[str, float],
    ) -> None:
        super().__init__()
        table = dict(tasks) if isinstance(tasks, Mapping) else {t: None for t in tasks}
        if not table:
            raise ConfigError("a multi-task loss needs at least one task")
        self.tasks = list(table)
        self.task_losses: dict[str, TaskLoss] = {t: fn or F.cross_entropy for t, fn in table.items()}
        # Registered so that their buffers (class weights) follow .to(device).
        self.modules_of_tasks = nn.ModuleDict({t: fn for t, fn in table.items() if isinstance(fn, nn.Module)})
        self.weighting = weighting if isinstance(weighting, nn.Module) else make_weighting(weighting, self.tasks, **options)

    def raw_losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor] | Tensor) -> dict[str, Tensor]:
        """Each task's own loss, unweighted.

        Args:
            outputs: ``{task: [N, C_t] logits}``.
            targets: ``{task: [N] class ids}``, or ``[N, T]`` class ids with one column per task in order.
        """
        targets = self._by_task(outputs, targets)
        return {t: self.task_losses[t](outputs[t], targets[t]) for t in self.tasks}

    def _by_task(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor] | Tensor) -> Mapping[str, Tensor]:
        missing = [t for t in self.tasks if t not in outputs]
        if missing:
            raise ConfigError(f"multi-task loss: no output for tasks {missing}; outputs: {list(outputs)}")
        if isinstance(targets, Tensor):
            if targets.ndim != 2 or targets.shape[1] != len(self.tasks):
                raise ConfigError(f"multi-task targets must be [N, {len(self.tasks)}], got {tuple(targets.shape)}")
            targets = {t: targets[:, i] for i, t in enumerate(self.tasks)}
        return targets

    def indexed_raw_losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor] | Tensor,
                           index: Tensor) -> dict[str, Tensor]:
        """:meth:`raw_losses`, calling each task loss through its ``indexed_loss`` when it has one
        (per-sample event weights keyed by input index, e.g. ``WeightedCrossEntropy(sample_weights=...)``)."""
        targets = self._by_task(outputs, targets)
        return {t: loss_for_batch(self.task_losses[t], outputs[t], targets[t], index) for t in self.tasks}

    def losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor] | Tensor) -> dict[str, Tensor]:
        """The weighted per-task losses (they sum to the objective)."""
        return self.weighting(self.raw_losses(outputs, targets))

    def forward(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor] | Tensor) -> Tensor:
        return sum(self.losses(outputs, targets).values())  # type: ignore[return-value]

    def weights(self) -> Tensor:
        """``[T]`` current task weights (detached)."""
        return self.weighting.weights()  # type: ignore[operator]

    def end_epoch(self) -> None:
        """Let an epoch-wise weighting (DWA) update its weights; a no-op for the others."""
        end = getattr(self.weighting, "end_epoch", None)
        if end is not None:
            end()
