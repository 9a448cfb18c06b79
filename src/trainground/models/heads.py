"""One head per task on a shared trunk: any single-output model made multi-task."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor, nn


def last_linear(model: nn.Module) -> nn.Linear | None:
    """The model's last ``nn.Linear`` in module order (the output layer of the built-in models)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last


class TaskHeads(nn.Module):
    """``{task: output}`` from a model whose output layer is widened to every task's width.

    The output layer's rows are split by task, so each task has its own linear head (its own
    weights and bias) on the shared trunk: a slice of one ``Linear`` is exactly a separate
    ``Linear``, in one matmul instead of T.

    Args:
        trunk: a model mapping ``x`` to ``[N, sum(widths)]`` (e.g. ``build_model(..., num_classes=sum)``).
        widths: ``{task: output width}`` in order (classes of a class task, 1 for a scalar regression).
        scales: ``{task: (mean, std)}`` of standardised regression targets: the head learns
            ``(y - mean) / std`` and ``forward`` answers ``mean + std * head`` (the original units).
    """

    def __init__(self, trunk: nn.Module, widths: Mapping[str, int],
                 scales: Mapping[str, tuple[float, float]] | None = None) -> None:
        super().__init__()
        self.scales = {str(k): (float(m), float(s)) for k, (m, s) in (scales or {}).items()}
        self.trunk = trunk
        self.widths = {str(k): int(v) for k, v in widths.items()}
        bounds, start = {}, 0
        for task, width in self.widths.items():
            bounds[task] = (start, start + width)
            start += width
        self.bounds = bounds
        self.total = start

    def forward(self, x: Any) -> dict[str, Tensor]:
        out = self.trunk(x)
        heads = {task: out[:, a:b] for task, (a, b) in self.bounds.items()}
        for task, (mean, std) in self.scales.items():
            heads[task] = heads[task] * std + mean
        return heads

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter but the output layer's (the tasks' heads), when it is the last Linear."""
        head = last_linear(self.trunk)
        skip = set() if head is None or head.out_features != self.total else {id(p) for p in head.parameters()}
        return (p for p in self.parameters() if id(p) not in skip)

    def fit_input_stats(self, features: Tensor) -> None:
        self.trunk.fit_input_stats(features)  # type: ignore[operator]

    def spec(self) -> dict[str, Any]:
        spec = {"name": "task_heads", "trunk": self.trunk.spec(), "widths": dict(self.widths)}  # type: ignore[operator]
        if self.scales:
            spec["scales"] = {k: list(v) for k, v in self.scales.items()}
        return spec
