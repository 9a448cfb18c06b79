"""The Guard's gradient chain on gradients a framework computed (Lightning, the transformers Trainer).

Those frameworks call ``backward`` and the optimizer themselves; between the two they
offer a hook (``on_before_optimizer_step``, ``on_pre_optimizer_step``). There the chain
(spike skip, clips) runs on ``param.grad``: on a CPU in floats (``transform.host``, one
read of the norm, as the Guard does), elsewhere on tensors. A skipped step drops every
gradient (``param.grad = None``): SGD, Adam and AdamW then leave the weights and their
state untouched. The trust region needs the Guard's own optimizer step and is left out.

:class:`FrameworkGuard` is the whole Guard instead (trust region, rollback to a snapshot):
it steps the optimizer itself through ``Guard.step_external`` and leaves the framework's
step nothing to do. It costs more per step (a copy of the gradients into the Guard's flat
buffer, the snapshot) and is opt-in (``full_guard=True`` of the callbacks).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor, nn

from trainground.gradients import Chain, Guard, GuardConfig
from trainground.gradients.context import HostContext, host_norm
from trainground.gradients.distributed import is_distributed, window_mean_loss

# The callbacks' default options; each callback works on its own copy (nothing shared is mutated).
DEFAULT_GUARD = GuardConfig()


class FrameworkGradients:
    """Runs ``config``'s chain (without the trust region) on a framework's gradients.

    The chain is built at the first step, from the model and the optimizer as the Guard builds
    its own (``GuardConfig.build_chain``: a recurrent model under Adam gets ``recurrent_level``).

    Args:
        config: the Guard's options; only the chain's (spike skip, clips, level) apply.
    """

    def __init__(self, config: GuardConfig) -> None:
        self.config = dataclasses.replace(config, trust_region=False)
        self.chain: Chain | None = None
        self._saved_chain: dict[str, Any] | None = None  # state loaded before the chain exists (a resume)
        self.skipped = 0
        self._groups: list[Any] | None = None
        self._params: list[Tensor] = []
        self._host: bool | None = None  # the chain's float path applies (decided at a fit's first step)
        self._distributed = False

    def _all_params(self, optimizer: torch.optim.Optimizer) -> list[Tensor]:
        # The parameter list is rebuilt only when the optimizer's groups change (a new fit).
        groups = optimizer.param_groups
        if self._groups is None or len(groups) != len(self._groups) or any(
                a is not b for a, b in zip(groups, self._groups, strict=True)):
            self._groups = list(groups)
            self._params = [p for group in groups for p in group["params"]]
            self._host = None
        return self._params

    def _build(self, optimizer: torch.optim.Optimizer, model: nn.Module | None) -> Chain:
        # Lightning hands its LightningOptimizer wrapper: the chain is chosen by the torch optimizer.
        self.chain = self.config.build_chain(model, getattr(optimizer, "optimizer", optimizer))
        if self._saved_chain is not None:
            self.chain.load_state_dict(self._saved_chain)
            self._saved_chain = None
        return self.chain

    def apply(self, optimizer: torch.optim.Optimizer, loss: Tensor | None, model: nn.Module | None = None) -> bool:
        """Clip or skip this step's gradients in place; False when the step was skipped.

        ``model`` (the module being trained) lets the first call build the chain the Guard would.
        """
        chain = self._build(optimizer, model) if self.chain is None else self.chain
        params, grads = [], []
        for p in self._all_params(optimizer):
            g = p.grad
            if g is not None:
                params.append(p)
                grads.append(g)
        if not params:
            return True
        if self._host is None:  # per fit: the device, the process group and the chain do not change within one
            self._distributed = is_distributed()
            self._host = chain.supports_host and all(g.device.type == "cpu" for g in grads)
        # Under DDP the gradients are already all-reduced; the loss is averaged over ranks here so
        # that every rank skips alike (see gradients.distributed).
        if self._host and not self._distributed:  # a CPU loss is read as is: one read, no tensor op
            value: Tensor | float | None = None if loss is None else float(loss.detach())
        else:
            value = None if loss is None else loss.detach().float().reshape(())
            if value is not None and self._distributed:
                value = torch.as_tensor(window_mean_loss(value, 1.0))
        if self._host:
            norm = host_norm(grads)
            ctx = HostContext(grads, params, raw_norm=norm, loss=None if value is None else float(value),
                              lr=float(optimizer.param_groups[0]["lr"]))
            chain.host(ctx)
            keep = ctx.keep > 0 and math.isfinite(norm)
            if keep:
                ctx.materialize()
        else:
            keep = bool(chain.apply_(grads, params, loss=value).keep)  # one host read per step
        if not keep:
            for p in params:
                p.grad = None
            self.skipped += 1
        return keep

    def state_dict(self) -> dict[str, Any]:
        return {"chain": self._saved_chain if self.chain is None else self.chain.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["chain"] is not None:
            if self.chain is None:
                self._saved_chain = state["chain"]
            else:
                self.chain.load_state_dict(state["chain"])
        self.skipped = int(state["skipped"])


class FrameworkGuard:
    """The whole Guard (chain, exact skip, secant trust region, snapshot and rollback, its
    statistics) on a framework's gradients, through :meth:`Guard.step_external`.

    Called where the framework is about to step the optimizer (after its backward, its AMP
    unscaling and its accumulation), the Guard steps the optimizer itself and then drops every
    gradient (``param.grad = None``), so the framework's own ``optimizer.step()`` that follows
    changes nothing (SGD, Adam, AdamW and most torch optimizers skip parameters without a
    gradient). Built on first use, when the model and the optimizer exist.

    Args:
        config: the Guard's options (all of them apply).
    """

    def __init__(self, config: GuardConfig) -> None:
        self.config = dataclasses.replace(config)
        self.guard: Guard | None = None
        self._skipped: Tensor | float = 0.0
        self._pending: dict[str, Any] | None = None

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor | None,
              batch_size: int | None = None) -> None:
        """Step the optimizer through the Guard (or skip, or roll back, as the Guard decides)."""
        if self.guard is None or self.guard.optimizer is not optimizer:
            self.guard = Guard(model, optimizer, config=self.config)
            if self._pending is not None:
                self.guard.load_state_dict(self._pending)
                self._pending = None
        guard = self.guard
        if not guard.step_external(loss=loss, batch_size=batch_size):
            return  # no gradients: nothing to step
        for p in guard.params:
            p.grad = None  # the framework's optimizer.step() that follows is a no-op
        # A device scalar on the tensor path: summed there, read only when asked (no sync per step).
        self._skipped = self._skipped + guard.last_stats["skipped"]

    @property
    def skipped(self) -> int:
        return int(float(self._skipped))

    def state_dict(self) -> dict[str, Any]:
        return {"guard": None if self.guard is None else self.guard.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = state.get("guard")
        self._skipped = float(state.get("skipped", 0))
