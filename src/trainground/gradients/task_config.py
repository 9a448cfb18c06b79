"""The ``tasks:`` section of a run: how a multi-target run's per-task gradients are handled."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from torch import Tensor, nn

from trainground.bounds import AT_LEAST_ONE, POSITIVE
from trainground.gradients.norm_thresholds import DynamicClipConfig
from trainground.gradients.tasks import TaskGradients


@dataclass
class TaskGradientConfig:
    """Per-task gradients (one backward per task) for a multi-target ``fit``.

    Off by default: a summed loss needs one backward, per-task gradients T of them. Turn it
    on to see each task's gradient norm and the cosine between tasks (the report's task
    panel), to clip each task on its own, or to de-conflict the tasks with PCGrad.
    """

    # One backward per task, logging per-task gradient norms and cosines (implied by the two below).
    per_task: bool = False
    # Clip each task's whole gradient to this norm before the tasks are summed (None: no per-task
    # clip); a task with a 10x larger gradient then cannot dictate the shared trunk's step.
    max_norm: Annotated[float, POSITIVE] | None = None
    # Project conflicting task gradients on the shared parameters (Yu et al. 2020).
    pcgrad: bool = False
    # Seed of PCGrad's random task order.
    seed: int = 0
    # Dynamic per-task limits: each task also clipped at a running statistic of its own norm
    # ("percentile": AutoClip per task, "zscore": ZClip per task); max_norm stays a cap on top.
    dynamic: DynamicClipConfig = field(default_factory=DynamicClipConfig)
    # Steps between two per-task gradient readings in metrics.jsonl (the figures are device tensors).
    log_every: Annotated[int, AT_LEAST_ONE] = 1

    @property
    def enabled(self) -> bool:
        return self.per_task or self.max_norm is not None or self.pcgrad or self.dynamic.enabled

    def build(self, params: Iterable[Tensor] | nn.Module, *, shared: Iterable[Tensor] | None = None) -> TaskGradients | None:
        """The :class:`TaskGradients` this section describes, or None when it is off."""
        if not self.enabled:
            return None
        return TaskGradients(params, shared=shared, max_norm=self.max_norm, pcgrad=self.pcgrad, seed=self.seed,
                             dynamic=self.dynamic)
