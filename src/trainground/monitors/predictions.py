"""How often each class is predicted, per split: a model that predicts one class for
everything shows it here first."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainground.monitors.base import Monitor


class PredictionMonitor(Monitor):
    """Counts of predicted classes (argmax of the logits) per split, on the device.

    Args:
        num_classes: number of logits.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self._counts: dict[str, Tensor] = {}

    def update(self, logits: Tensor, split: str = "train") -> None:
        """Add one batch of logits ``[N, num_classes]`` of ``split``."""
        counts = torch.bincount(logits.detach().argmax(dim=1), minlength=self.num_classes)
        previous = self._counts.get(split)
        self._counts[split] = counts if previous is None else previous.to(counts.device) + counts

    def compute(self) -> dict[str, dict[str, Any]]:
        """Per split: ``fractions`` (list), ``entropy_ratio`` (entropy / log C, 1 = uniform),
        ``max_fraction`` and ``samples``."""
        result = {}
        for split, counts in self._counts.items():
            c = counts.double().cpu().numpy()
            total = c.sum()
            p = c / total if total > 0 else c
            nz = p[p > 0]
            entropy = float(-(nz * np.log(nz)).sum()) if nz.size else 0.0
            result[split] = {
                "fractions": p.tolist(), "samples": int(total), "max_fraction": float(p.max()) if p.size else 0.0,
                "entropy_ratio": entropy / np.log(self.num_classes) if self.num_classes > 1 else 1.0,
            }
        return result

    def reset(self) -> None:
        self._counts = {}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": {k: v.cpu() for k, v in self._counts.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._counts = dict(state.get("counts", {}))
