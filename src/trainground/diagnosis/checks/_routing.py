"""What the router checks share: each MoE layer's routing windows, read from the layers table
(rows written by ``monitors.RoutingMonitor``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainground.diagnosis.checks._common import matrix

# A verdict about an expert needs enough assignments in the window: under an even split
# an expert expects assignments / E of them, and with >= 20 the chance that a healthy
# expert gets none by luck is < e^-20.
MIN_ASSIGNMENTS_PER_EXPERT = 20

SUGGESTION = (
    "raise the MoE's balance_weight (e.g. 0.01 -> 0.1; the load-balancing loss pushes the router back to an "
    "even split), keep noisy_gating on, add moe_aux_loss(model) to the training loss if it is missing, "
    "lower the learning rate of the gate, or re-initialise the gate's bias"
)


@dataclass
class RouterWindows:
    """One MoE layer's windows: ``steps`` [W]; ``stats`` W x router stat; ``load`` [W, E]."""

    name: str
    steps: np.ndarray
    stats: pd.DataFrame
    load: np.ndarray

    @property
    def experts(self) -> int:
        return self.load.shape[1]

    @property
    def top_k(self) -> int:
        return int(self.stats["router_top_k"].iloc[-1])

    def enough(self) -> np.ndarray:
        """Per window: whether it holds enough assignments for a verdict about experts."""
        assignments = self.stats["router_tokens"].to_numpy() * self.top_k
        return assignments >= MIN_ASSIGNMENTS_PER_EXPERT * self.experts


def router_windows(layers: pd.DataFrame | None) -> list[RouterWindows]:
    """Every MoE layer found in the table, windows in step order (none: an empty list)."""
    tokens = matrix(layers, "router_tokens")
    if tokens.empty:
        return []
    load = matrix(layers, "expert_load")
    out = []
    for name in tokens.columns:
        stats = pd.DataFrame({
            stat: matrix(layers, stat)[name] for stat in (
                "router_tokens", "router_top_k", "router_capacity_factor", "router_entropy",
                "router_saturated_fraction", "router_dropped_fraction", "router_balance")
        }).dropna(subset=["router_tokens"])
        prefix = f"{name}.experts."
        cols = sorted((c for c in load.columns if str(c).startswith(prefix)), key=lambda c: int(str(c)[len(prefix):]))
        if stats.empty or not cols:
            continue
        shares = load.loc[stats.index, cols].to_numpy(dtype=float)
        out.append(RouterWindows(str(name), stats.index.to_numpy(), stats, shares))
    return out
