"""The Guard's gradient chain on gradients a framework computed (Lightning, the transformers Trainer).

Those frameworks call ``backward`` and the optimizer themselves; between the two they
offer a hook (``on_before_optimizer_step``, ``on_pre_optimizer_step``). There the chain
(spike skip, clips) runs on ``param.grad``: on a CPU in floats (``transform.host``, one
read of the norm, as the Guard does), elsewhere on tensors. A skipped step drops every
gradient (``param.grad = None``): SGD, Adam and AdamW then leave the weights and their
state untouched. The trust region needs the Guard's own optimizer step and is left out.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from trainground.gradients import GuardConfig
from trainground.gradients.context import HostContext, host_norm
from trainground.gradients.distributed import is_distributed, window_mean_loss


class FrameworkGradients:
    """Runs ``config``'s chain (without the trust region) on a framework's gradients.

    Args:
        config: the Guard's options; only the chain's (spike skip, clips) apply.
    """

    def __init__(self, config: GuardConfig) -> None:
        self.chain = dataclasses.replace(config, trust_region=False).build_chain()
        self.skipped = 0
        self._groups: list[Any] | None = None
        self._params: list[Tensor] = []

    def _all_params(self, optimizer: torch.optim.Optimizer) -> list[Tensor]:
        # The parameter list is rebuilt only when the optimizer's groups change.
        groups = optimizer.param_groups
        if self._groups is None or len(groups) != len(self._groups) or any(
                a is not b for a, b in zip(groups, self._groups, strict=True)):
            self._groups = list(groups)
            self._params = [p for group in groups for p in group["params"]]
        return self._params

    def apply(self, optimizer: torch.optim.Optimizer, loss: Tensor | None) -> bool:
        """Clip or skip this step's gradients in place; False when the step was skipped."""
        params = [p for p in self._all_params(optimizer) if p.grad is not None]
        if not params:
            return True
        grads = [p.grad for p in params]
        # Under DDP the gradients are already all-reduced; the loss is averaged over ranks here so
        # that every rank skips alike (see gradients.distributed).
        value = None if loss is None else loss.detach().float().reshape(())
        if value is not None and is_distributed():
            value = torch.as_tensor(window_mean_loss(value, 1.0))
        if all(g.device.type == "cpu" for g in grads) and self.chain.supports_host:
            norm = host_norm(grads)
            ctx = HostContext(grads, params, raw_norm=norm, loss=None if value is None else float(value),
                              lr=float(optimizer.param_groups[0]["lr"]))
            self.chain.host(ctx)
            keep = ctx.keep > 0 and math.isfinite(norm)
            if keep:
                ctx.materialize()
        else:
            keep = bool(self.chain.apply_(grads, params, loss=value).keep)  # one host read per step
        if not keep:
            for p in params:
                p.grad = None
            self.skipped += 1
        return keep

    def state_dict(self) -> dict[str, Any]:
        return {"chain": self.chain.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.chain.load_state_dict(state["chain"])
        self.skipped = int(state["skipped"])
