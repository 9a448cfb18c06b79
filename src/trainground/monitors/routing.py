"""Routing statistics of every mixture-of-experts layer, accumulated over a window (an epoch).

Rows of the long layers table (``step, epoch, layer, stat, value``), one moment per window:

* layer ``NAME`` (the MoE module's name), stats ``router_tokens``, ``router_experts``,
  ``router_top_k``, ``router_capacity_factor`` (NaN: no capacity), ``router_entropy``
  (mean entropy of the token's gate distribution over ``ln E``: 1 uniform, 0 one-hot),
  ``router_saturated_fraction`` (tokens whose top gate probability is >= 0.99),
  ``router_dropped_fraction`` (assignments past an expert's capacity) and
  ``router_balance`` (``E * sum_i f_i P_i`` over the window: 1 balanced, E collapsed);
* layer ``NAME.experts.I``, stats ``expert_load`` (share of the window's assignments),
  ``expert_importance`` (mean gate probability) and ``expert_kept`` (assignments processed).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from trainground.models.moe import MoE
from trainground.monitors.base import Monitor
from trainground.monitors.table import empty_table, long_table

_SUMS = ("tokens", "assigned", "kept", "importance", "entropy", "saturated")


class RoutingMonitor(Monitor):
    """Sums each :class:`MoE`'s ``last_routing`` over training forwards (forward hooks, on the device).

    Evaluation forwards (``module.training`` False) are not counted: the statistics describe
    what the router did to the tokens that trained the experts.

    Args:
        model: any module; its MoE sub-modules are watched (none: every table is empty).
    """

    def __init__(self, model: nn.Module) -> None:
        self.modules = [(name or "moe", m) for name, m in model.named_modules() if isinstance(m, MoE)]
        self._sums: dict[str, dict[str, Tensor]] = {}
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.modules]

    def _hook(self, name: str) -> Any:
        def hook(module: MoE, _inputs: Any, _output: Any) -> None:
            stats = module.last_routing
            if not module.training or stats is None:
                return
            sums = self._sums.setdefault(name, {})
            for key in _SUMS:
                value = getattr(stats, key).detach().to(torch.float64)
                sums[key] = value if key not in sums else sums[key] + value

        return hook

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: the forward hooks collect."""

    @property
    def tokens(self) -> int:
        """Tokens seen in the current window by the first watched layer (host sync)."""
        return int(next(iter(self._sums.values()))["tokens"]) if self._sums else 0

    def compute_window(self, step: int, epoch: int) -> pd.DataFrame:
        """The window's rows (see the module docstring); empty when nothing was routed."""
        tables = []
        for name, module in self.modules:
            sums = self._sums.get(name)
            if sums is None:
                continue
            s = {k: v.cpu().numpy() for k, v in sums.items()}
            tokens, assigned = float(s["tokens"]), s["assigned"].astype(np.float64)
            experts = module.num_experts
            load = assigned / max(assigned.sum(), 1.0)
            importance = s["importance"] / max(tokens, 1.0)
            router = {
                "router_tokens": tokens, "router_experts": experts, "router_top_k": module.k,
                "router_capacity_factor": math.nan if module.capacity_factor is None else module.capacity_factor,
                "router_entropy": float(s["entropy"]) / max(tokens, 1.0) / math.log(experts) if experts > 1 else 1.0,
                "router_saturated_fraction": float(s["saturated"]) / max(tokens, 1.0),
                "router_dropped_fraction": float((assigned - s["kept"]).sum() / max(assigned.sum(), 1.0)),
                "router_balance": float(experts * (load * importance).sum()),
            }
            tables.append(long_table([step], [epoch], [name], {k: np.array([[v]]) for k, v in router.items()}))
            tables.append(long_table([step], [epoch], [f"{name}.experts.{i}" for i in range(experts)], {
                "expert_load": load[None], "expert_importance": importance[None], "expert_kept": s["kept"][None],
            }))
        return pd.concat(tables, ignore_index=True) if tables else empty_table()

    def compute(self) -> pd.DataFrame:
        return self.compute_window(-1, -1)

    def reset(self) -> None:
        self._sums = {}

    def remove(self) -> None:
        """Detach the hooks (the monitor stops observing)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def state_dict(self) -> dict[str, Any]:
        return {name: {k: v.cpu().tolist() for k, v in sums.items()} for name, sums in self._sums.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = {name: {k: torch.tensor(v, dtype=torch.float64) for k, v in sums.items()}
                      for name, sums in state.items()}
