"""The Guard: one object that makes any PyTorch loop's step stable (AMP, accumulation, clipping, spikes)."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from trainground.errors import ConfigError
from trainground.gradients.actions import ActionLog, action_record
from trainground.gradients.config import GuardConfig
from trainground.gradients.context import GradContext, HostContext, host_norm
from trainground.gradients.distributed import window_mean_loss
from trainground.gradients.noise_scale import NoiseScale
from trainground.gradients.secant import SecantTrustRegion
from trainground.gradients.spike import SpikeSkip
from trainground.gradients.update import (
    FloatStats,
    lr_scalable,
    skip_step_,
    step_scaled,
)

# Mean elements per parameter tensor below which one kernel over a flat buffer is cheaper than
# one dispatch per tensor (a CPU kernel on 64k floats costs about as much as its launch).
_SMALL_TENSOR = 1 << 16


class TaskGradients(Protocol):
    """What the Guard needs from a multi-task handler (``trainground.gradients.tasks``)."""

    def backward(self, losses: Mapping[str, Tensor], *, grad_multiplier: float, loss_scale: float | Tensor) -> None:
        """Write ``combined_gradient * grad_multiplier * loss_scale`` into (accumulate onto) ``param.grad``."""


class Guard:
    """Stable steps for any loop: autocast, sample-weighted accumulation, a transform chain,
    spike skip and rollback.

    ::

        guard = Guard(model, optimizer)
        for x, y in batches:
            with guard.autocast():
                loss = loss_fn(model(x), y)
            guard.backward(loss, batch_size=len(y))
            guard.step()    # steps the optimizer only when the accumulation window closes

    Per optimizer step: unscale (AMP) and divide by the window's sample count, run the chain
    (skip-on-spike, clips, secant trust region), zero the gradients of a skipped or non-finite
    step, step the optimizer, scale its update by the trust region (a skipped step restores
    the old weights exactly), zero the gradients. The exact skip and the trust region need
    all parameters in one dtype and on one device (one flat update buffer); otherwise a
    skipped step only zeroes the gradient (momentum still moves the weights) and the trust
    region is off.

    Memory: a parameter-sized flat gradient buffer (it replaces the grads) when gradients
    accumulate (K > 1, AMP scaler, CUDA, or a small model with the trust region), one
    parameter-sized buffer for the update (trust region or exact skip), an in-memory
    snapshot of model + optimizer state, and one more buffer with adaptive K. Every ``check_every`` steps one host read
    turns skips into actions, rolls back a persistent spike to the last in-memory snapshot,
    takes a new snapshot when healthy and adapts K.

    Speed. On a CPU device (where a host read costs nothing and every 0-dim tensor op costs
    microseconds) the Guard reads the global norm once per step and runs the chain in floats
    (``transform.host``): a skipped step is decided on the host, the trust region's scale is
    applied by scaling the lr for that one step (exact for the optimizers in
    ``update.LR_LINEAR``; others interpolate the weights), and a step that keeps its update
    touches the weights once. With K = 1, no scaler and no trust region there is no flat
    buffer at all: the gradients stay where autograd puts them. On CUDA everything stays on
    the device (the tensor path above, no sync per step). A skipped step means the same on
    both: the optimizer sees a zero gradient and the weights come back exactly.

    Args:
        model: the model whose parameters the optimizer updates.
        optimizer: any ``torch.optim.Optimizer`` over (a subset of) the model's parameters.
        config: options (``GuardConfig()`` when omitted).
        tasks: a multi-task handler; then ``backward`` takes a mapping of per-task losses.
        actions: where actions are appended (``ActionLog`` or a path); None keeps them in memory only.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, config: GuardConfig | None = None,
                 tasks: TaskGradients | None = None, actions: ActionLog | str | None = None) -> None:
        self.model, self.optimizer = model, optimizer
        self.config = config or GuardConfig()
        if self.config.accumulation < 1 or self.config.max_accumulation < 1:
            raise ConfigError("guard.accumulation and guard.max_accumulation must be >= 1")
        self.tasks = tasks
        self.chain = self.config.build_chain()
        self.action_log = ActionLog(actions) if isinstance(actions, str) else actions
        self.actions: list[dict[str, Any]] = []
        self.params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        device = self.params[0].device if self.params else torch.device("cpu")
        self.device = device
        self.amp_dtype, use_scaler = self._amp_mode(device)
        self.scaler = torch.amp.GradScaler(device.type) if use_scaler else None
        self.k = max(2, self.config.accumulation) if self.config.adaptive_accumulation else self.config.accumulation
        self.noise_scale = NoiseScale()
        self.steps = 0  # optimizer steps (windows) closed
        self._flat = self._old = None
        self._prev: Tensor | None = None  # adaptive K: the buffer before the last micro-batch
        self._views: list[Tensor] = []
        self._old_views: list[Tensor] = []
        self._same_layout = len({(p.dtype, p.device) for p in self.params}) == 1 and bool(self.params)
        self._cpu = device.type == "cpu"
        self._numel = sum(p.numel() for p in self.params)
        self._chain_key: tuple[int, ...] | None = None
        self._chain_cache: tuple[bool, list[SecantTrustRegion]] = (True, [])
        # The flat buffer pays for itself when gradients accumulate or dot products are taken; on a
        # CPU with K = 1 and no trust region the gradients stay where autograd puts them.
        self._flat_mode = self._wants_flat()
        self._micro = 0
        self._samples: float = 0
        # The window's loss sum: a float on a CPU (read per backward, free there), a tensor elsewhere.
        self._loss_sum: float | Tensor = 0.0 if self._cpu else torch.zeros((), dtype=torch.float32, device=device)
        self._grad_factor = 1.0  # grads * factor = sum over the window of batch_size * mean gradient
        self._small_sq = torch.zeros((), dtype=torch.float64, device=device)
        self._small_n = torch.zeros((), dtype=torch.float64, device=device)
        self._pending: list[tuple[int, Any, Any, Any]] = []  # (step, keep, norm, loss) since check
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_step = -1
        self._streak = 0  # consecutive skipped steps, as last read on the host
        self.last_stats: Mapping[str, Tensor] = FloatStats({
            "grad_norm": 0.0, "clip_threshold": 0.0, "accum_k": float(self.k), "skipped": 0.0,
            "update_scale": 1.0, "loss": 0.0})

    # ------------------------------------------------------------------ setup
    def _amp_mode(self, device: torch.device) -> tuple[torch.dtype | None, bool]:
        amp = self.config.amp
        if amp == "off":
            return None, False
        if amp == "auto":
            return (torch.float16, True) if device.type == "cuda" else (torch.bfloat16, False)
        if amp == "fp16":
            if device.type != "cuda":
                raise ConfigError("guard.amp 'fp16' needs a CUDA device; use 'bf16' or 'auto' on CPU")
            return torch.float16, True
        return torch.bfloat16, False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context for the forward pass: autocast in the configured precision (a no-op when off)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _ensure_flat(self) -> None:
        """Point every ``param.grad`` at a slice of one flat buffer (norms and dots in one kernel).

        Re-done whenever a grad is no longer our view (the user called ``zero_grad(set_to_none=True)``,
        or the objects were deep-copied).
        """
        if not self._flat_mode:
            return
        if self._flat is not None and all(p.grad is v for p, v in zip(self.params, self._views, strict=True)):
            return  # the usual case: the grads are still our view objects
        if self._flat is not None and all(
            p.grad is not None and p.grad.data_ptr() == v.data_ptr() for p, v in zip(self.params, self._views, strict=True)
        ) and self._flat.data_ptr() == self._views[0].data_ptr():
            return
        ref = self.params[0]
        total = sum(p.numel() for p in self.params)
        flat = torch.zeros(total, dtype=ref.dtype, device=ref.device)
        old = torch.zeros_like(flat)
        views, old_views, offset = [], [], 0
        for p in self.params:
            n = p.numel()
            view = flat[offset:offset + n].view_as(p)
            if p.grad is not None:
                view.copy_(p.grad)
            p.grad = view
            views.append(view)
            old_views.append(old[offset:offset + n].view_as(p))
            offset += n
        if self._old is not None and self._old.numel() == total:
            old.copy_(self._old)
        self._flat, self._views, self._old, self._old_views = flat, views, old, old_views
        for t in self._trust():
            if t.neg_update is not None and t.neg_update.numel() == total:
                t.neg_update = old.copy_(t.neg_update.to(old.device)) if t.neg_update is not old else old

    def _chain_info(self) -> tuple[bool, list[SecantTrustRegion]]:
        """(chain has a float path, its trust regions), recomputed only when the chain changes."""
        key = tuple(map(id, self.chain.transforms))
        if key != self._chain_key:
            self._chain_key = key
            self._chain_cache = (self.chain.supports_host, self._trust())
        return self._chain_cache

    def _wants_flat(self) -> bool:
        # On a CPU with K = 1 the flat buffer costs two passes per step (zeroing it, and autograd
        # adding into it instead of handing over its own tensor). Only the trust region's dot
        # products gain from it, and only when the tensors are small: then one kernel over the
        # buffer beats a dispatch per tensor (84k MLP: 1.29x vs 1.37x the plain step; 1M MLP,
        # tensors of ~130k elements: 1.30x vs 1.24x, benchmarks/step_cost.py on a shared CPU).
        small = self._numel <= _SMALL_TENSOR * max(1, len(self.params))
        return self._same_layout and (
            not self._cpu or self.k > 1 or self.config.adaptive_accumulation or self.scaler is not None
            or not self._chain_info()[0] or (small and bool(self._chain_info()[1])))

    def _choose_mode(self) -> None:
        """At a window's start: flat buffer or direct gradients (the chain or K may have changed)."""
        flat_mode = self._wants_flat()
        if flat_mode != self._flat_mode:
            self._flat_mode = flat_mode
            if not flat_mode and self._flat is not None:
                self._flat = None  # back to autograd's own tensors
                for p in self.params:
                    p.grad = None

    def _trust(self) -> list[SecantTrustRegion]:
        return [t for t in self.chain if isinstance(t, SecantTrustRegion)]

    def _spike(self) -> SpikeSkip | None:
        return next((t for t in self.chain if isinstance(t, SpikeSkip)), None)

    # ------------------------------------------------------------- backward
    def backward(self, loss: Tensor | Mapping[str, Tensor], *, batch_size: int | None = None) -> None:
        """Accumulate the gradient of ``loss`` (a batch mean) weighted by ``batch_size`` samples.

        The window's gradient is the sum of ``loss * batch_size`` gradients divided by the
        window's total samples at ``step``: exact for windows of unequal micro-batches.
        With ``tasks``, ``loss`` is a mapping of per-task scalar losses.
        """
        n = 1 if batch_size is None else int(batch_size)
        multiplier = n
        if self._micro == 0:
            self._choose_mode()
        if self._flat_mode:
            self._ensure_flat()
        elif self._micro == 0 and not isinstance(loss, Mapping):
            # Direct gradients, first micro-batch: the plain mean gradient (grads * n is the sum).
            multiplier, self._grad_factor = 1, float(n)
        elif self._grad_factor != 1.0:
            # A second micro-batch in one window without a flat buffer: turn the grads into sums.
            torch._foreach_mul_([p.grad for p in self.params if p.grad is not None], self._grad_factor)
            self._grad_factor = 1.0
        scale = self.scaler.get_scale() if self.scaler is not None else 1.0
        if isinstance(loss, Mapping):
            if self.tasks is None:
                raise ConfigError("guard.backward got a mapping of task losses, but the Guard has no tasks "
                                  "handler; pass Guard(..., tasks=...) or sum the losses into one tensor")
            self.tasks.backward(loss, grad_multiplier=float(multiplier), loss_scale=scale)
            total = torch.stack([v.detach().float().reshape(()) for v in loss.values()]).sum()
        else:
            total = loss.detach().float().reshape(())
            weighted = loss * multiplier if multiplier != 1 else loss
            (self.scaler.scale(weighted) if self.scaler is not None else weighted).backward()
        self._loss_sum = self._loss_sum + (float(total) if self._cpu else total) * n
        self._samples = self._samples + n
        self._micro += 1
        if self.config.adaptive_accumulation and self._flat is not None:
            # Each micro-batch's own mean gradient (the buffer's growth since the last backward):
            # the small-batch norms of the noise-scale estimate, averaged over the window.
            if self._prev is None or self._prev.shape != self._flat.shape:
                self._prev = torch.zeros_like(self._flat)
            if self._micro == 1:
                self._prev.zero_()
            micro = torch.linalg.vector_norm(self._flat - self._prev, dtype=torch.float64) ** 2 / (scale * n) ** 2
            self._prev.copy_(self._flat)
            k = self._micro
            self._small_sq = micro if k == 1 else self._small_sq + (micro - self._small_sq) / k
            self._small_n = torch.full_like(self._small_n, n) if k == 1 else self._small_n + (n - self._small_n) / k

    # ----------------------------------------------------------------- step
    def step(self, *, force: bool = False) -> bool:
        """Close the accumulation window when it holds K micro-batches (or ``force``), and step.

        Returns:
            True when the window closed (the optimizer stepped or the step was skipped).
        """
        if self._micro == 0 or (self._micro < self.k and not force):
            return False
        if self._snapshot is None:
            self._take_snapshot()  # the state before the first update is the first good state
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # before any transform sees a norm
        if self._cpu and self.scaler is None and self._chain_info()[0]:
            self._step_host()
        else:
            self._step_device()
        self.zero_grad()
        self.steps += 1
        if self.steps % self.config.check_every == 0:
            self.check()
        return True

    def _window(self) -> tuple[list[Tensor], list[Tensor]]:
        if self._flat is not None:
            return self._views, self.params
        params = [p for p in self.params if p.grad is not None]
        return [p.grad for p in params], params

    def _ensure_old(self) -> None:
        """The flat update buffer (``-u`` for the trust region, the old weights while stepping)
        without a flat gradient buffer: allocated on first use."""
        if self._old is None and self._same_layout:
            ref = self.params[0]
            self._old = torch.zeros(sum(p.numel() for p in self.params), dtype=ref.dtype, device=ref.device)
            self._old_views, offset = [], 0
            for p in self.params:
                self._old_views.append(self._old[offset:offset + p.numel()].view_as(p))
                offset += p.numel()

    def _scratch(self, params: list[Tensor]) -> list[Tensor]:
        """Views of the flat update buffer aligned with ``params`` (all of them, or those with a grad)."""
        self._ensure_old()
        if self._flat is not None or len(params) == len(self.params):
            return self._old_views
        return [v for p, v in zip(self.params, self._old_views, strict=True) if p.grad is not None]

    def _step_host(self) -> None:
        """The CPU step: one read of the norm, the chain in floats, the weights touched once."""
        grads, params = self._window()
        flat = self._flat
        base = self._grad_factor / self._samples
        loss = window_mean_loss(self._loss_sum, self._samples)  # the same on every DDP rank
        ctx = HostContext(grads, params, flat, raw_norm=host_norm(grads, flat), scale=base, base_scale=base,
                          loss=loss, lr=float(self.optimizer.param_groups[0]["lr"]))
        window_norm = ctx.norm
        if self.config.adaptive_accumulation and self._micro >= 2:
            big = torch.tensor(window_norm, dtype=torch.float64) ** 2
            self.noise_scale.update(self._small_sq, big, self._small_n, float(self._samples))
        trusts = self._chain_info()[1] if self._same_layout else []
        trust = bool(trusts)
        measure = trust and any(t.measures() for t in trusts)  # this step's update feeds a secant
        if trust and flat is None:
            ctx.update_views = [v.view(-1) for v in self._scratch(params)]  # per-tensor dot products
            ctx.update_buffer = self._old
        self.chain.host(ctx)
        keep = ctx.keep > 0 and math.isfinite(window_norm)
        if keep:
            ctx.materialize()  # finite norm: no NaN to clean; scale 1: no pass at all
            s = ctx.update_scale
            old = self._scratch(params) if measure or (s != 1.0 and not lr_scalable(self.optimizer)) else None
            if old is None:
                step_scaled(self.optimizer, s)  # the common case: nothing but the optimizer touches the weights
            else:
                with torch.no_grad():
                    if measure and flat is None and len(params) < len(self.params):
                        self._old.zero_()  # type: ignore[union-attr]  # a parameter without a grad did not move
                    torch._foreach_copy_(old, params)
                    if not step_scaled(self.optimizer, s):
                        torch._foreach_lerp_(params, old, 1.0 - s)
                    if measure:
                        torch._foreach_sub_(old, params)  # old <- -(applied update)
        else:
            ctx.keep = 0.0
            skip_step_(self.optimizer, params, grads, self._scratch(params) if self._same_layout else None)
            if trust:
                self._old.zero_()  # type: ignore[union-attr]  # nothing was applied
        if trust:
            self.chain.after_step(ctx, self._old)  # type: ignore[arg-type]
        skipped = 0.0 if keep else 1.0
        self.last_stats = FloatStats({
            "grad_norm": window_norm, "clip_threshold": ctx.threshold, "accum_k": float(self.k),
            "skipped": skipped, "update_scale": ctx.update_scale, "loss": loss})
        self._pending.append((self.steps, 1.0 - skipped, window_norm, loss))

    def _step_device(self) -> None:
        """The tensor step (CUDA, or a chain with a transform that has no float path): no host sync."""
        grads, params = self._window()
        loss = torch.as_tensor(window_mean_loss(self._loss_sum, self._samples), device=self.device).float()
        ctx = GradContext.from_grads(grads, params, flat=self._flat, loss=loss)
        ctx.base_scale = torch.full((), self._grad_factor / self._samples, device=ctx.raw_norm.device)
        ctx.scale = ctx.base_scale.clone()
        ctx.lr = float(self.optimizer.param_groups[0]["lr"])
        window_norm = ctx.norm
        if self.config.adaptive_accumulation and self._micro >= 2:
            self.noise_scale.update(self._small_sq, window_norm.double() ** 2, self._small_n, float(self._samples))
        self.chain(ctx)
        ctx.keep = ctx.keep * torch.isfinite(window_norm)
        ctx.scale = ctx.scale * ctx.keep
        ctx.materialize()
        if self._flat is not None:
            self._flat.nan_to_num_(0.0, 0.0, 0.0)
        else:
            for g in grads:
                g.nan_to_num_(0.0, 0.0, 0.0)
        exact = self._same_layout
        old = self._scratch(params) if exact else []
        if exact:
            with torch.no_grad():
                torch._foreach_copy_(old, params)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if exact:
            # new <- new + (1 - s * keep) * (old - new): the trust region's share of the update,
            # all of it for a skipped step (the weights come back exactly).
            with torch.no_grad():
                torch._foreach_lerp_(params, old, 1.0 - ctx.update_scale * ctx.keep)
                if self._flat is not None:
                    torch._foreach_sub_(old, params)  # old <- -(applied update)
            if self._flat is not None:
                self.chain.after_step(ctx, self._old)  # type: ignore[arg-type]
        self.last_stats = {
            "grad_norm": window_norm, "clip_threshold": ctx.threshold, "accum_k": torch.full_like(window_norm, self.k),
            "skipped": 1.0 - ctx.keep, "update_scale": ctx.update_scale, "loss": ctx.loss,
        }
        self._pending.append((self.steps, ctx.keep, window_norm, ctx.loss))

    def zero_grad(self) -> None:
        """Empty the accumulation window (the flat buffer is zeroed in one kernel)."""
        if self._flat is not None:
            self._flat.zero_()
        else:
            for p in self.params:  # what optimizer.zero_grad(set_to_none=True) does, without its overhead
                p.grad = None
        self._micro = 0
        self._samples = 0
        self._loss_sum = 0.0 if self._cpu else torch.zeros_like(self._loss_sum)  # type: ignore[arg-type]
        self._grad_factor = 1.0

    # ------------------------------------------------- host-side escalation
    def check(self) -> None:
        """One host read: record skips, roll back a persistent spike, snapshot when healthy, adapt K."""
        if not self._pending:
            return
        steps = [p[0] for p in self._pending]
        if all(isinstance(v, float) for p in self._pending for v in p[1:]):
            rows = [list(p[1:]) for p in self._pending]  # the CPU path recorded floats: nothing to read
        else:
            rows = torch.stack([torch.stack([torch.as_tensor(v, device=self.device).float().reshape(())
                                             for v in p[1:]]) for p in self._pending]).tolist()
        noise = float(self.noise_scale.value) if self.config.adaptive_accumulation else math.nan
        self._pending.clear()
        skipped = [(s, norm, loss) for s, (keep, norm, loss) in zip(steps, rows, strict=True) if keep == 0]
        streak, longest = self._streak, 0  # consecutive skips carry over from the last check
        for _, (keep, _, _) in zip(steps, rows, strict=True):
            streak = streak + 1 if keep == 0 else 0
            longest = max(longest, streak)
        self._streak = streak
        for s, norm, loss in skipped:
            self._record(s, "skip", "gradient norm or loss is a spike (or not finite); update not applied",
                         {"grad_norm": norm, "loss": loss, "z_skip": self.config.spike_z})
        if longest >= self.config.rollback_after and self._snapshot is not None:
            self._rollback(steps[-1], longest, skipped)
        elif not skipped and steps[-1] + 1 - self._snapshot_step >= self.config.snapshot_every:
            self._take_snapshot()
        if self.config.adaptive_accumulation and not math.isnan(noise):
            self._adapt_k(steps[-1], noise)

    def _record(self, step: int, action: str, reason: str, evidence: dict[str, Any]) -> None:
        record = action_record(step, action, reason, evidence)
        self.actions.append(record)
        if self.action_log is not None:
            self.action_log.append(record)

    def _take_snapshot(self) -> None:
        self._snapshot = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "trust_scale": [t.scale_tensor() for t in self._trust()],
        }
        self._snapshot_step = self.steps

    def _rollback(self, step: int, streak: int, skipped: list[tuple[int, float, float]]) -> None:
        assert self._snapshot is not None
        self.model.load_state_dict(self._snapshot["model"])
        self.optimizer.load_state_dict(copy.deepcopy(self._snapshot["optimizer"]))
        self._ensure_flat()
        spike = self._spike()
        self._streak = 0
        if spike is not None:
            spike.reset_streak()
        for i, t in enumerate(self._trust()):
            # The steps that led here were too long: cut the good state's trust scale, compounding
            # over repeated rollbacks (each one starts from a smaller step), no secant across the jump.
            scale = self._snapshot["trust_scale"][i] * self.config.rollback_trust
            self._snapshot["trust_scale"][i] = scale.clone()
            t.set_scale(scale)
            t.reset_direction()
        self._record(step, "rollback", f"{streak} consecutive skipped steps (a persistent spike); restored the "
                     f"state of step {self._snapshot_step} and dropped the batches since",
                     {"restored_step": self._snapshot_step, "streak": streak,
                      "skipped_steps": [s for s, _, _ in skipped]})

    def _adapt_k(self, step: int, noise: float) -> None:
        micro = max(float(self._small_n.item()), 1.0)
        # inf (no measurable signal left) means "as large as allowed"; a negative estimate "as small".
        ratio = min(max(noise / micro, 0.0), float(self.config.max_accumulation))
        target = int(min(max(round(ratio), 2), self.config.max_accumulation))
        if target != self.k:
            self._record(step, "accumulation", "micro-batches per step follow the gradient noise scale",
                         {"noise_scale": noise, "micro_batch": micro, "from": self.k, "to": target})
            self.k = target

    # ------------------------------------------------------------ state
    @property
    def grad_scale(self) -> Tensor | float:
        """How many times ``param.grad`` exceeds the mean gradient of the samples accumulated
        so far in this window (their count, times the AMP loss scale). Between ``backward`` and
        ``step``, divide gradient norms by it to read them at true scale."""
        scale = self.scaler.get_scale() if self.scaler is not None else 1.0
        # grads * grad_factor is the window's sum of batch_size * mean gradient (grad_factor is
        # the batch size on the direct K = 1 path, 1 once gradients are accumulated as sums).
        return self._samples * scale / self._grad_factor

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes the trajectory: chain statistics, K, noise scale, scaler, window."""
        return {
            "chain": self.chain.state_dict(), "k": self.k, "steps": self.steps,
            "noise_scale": self.noise_scale.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "snapshot_step": self._snapshot_step,
            "last_stats": {k: v.detach().cpu().clone() for k, v in self.last_stats.items()},
            "window": {"micro": self._micro, "samples": torch.tensor(float(self._samples), dtype=torch.float64),
                       "loss_sum": torch.as_tensor(self._loss_sum).detach().double().cpu(),
                       "grad_factor": self._grad_factor, "grads": self._window_grads()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.chain.load_state_dict(state["chain"])
        self.k, self.steps = int(state["k"]), int(state["steps"])
        self.noise_scale.load_state_dict(state["noise_scale"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.last_stats = {k: v.to(self.device) for k, v in state.get("last_stats", self.last_stats).items()}
        window = state["window"]
        self._ensure_flat()
        self._micro = int(window["micro"])
        self._samples = float(window["samples"])
        loss_sum = window["loss_sum"]
        self._loss_sum = float(loss_sum) if self._cpu else loss_sum.to(self.device, torch.float32)
        self._grad_factor = float(window.get("grad_factor", 1.0))
        grads = window["grads"]
        if isinstance(grads, Tensor) and self._flat is not None:
            self._flat.copy_(grads)
        elif isinstance(grads, list):
            for p, g in zip(self.params, grads, strict=True):
                p.grad = None if g is None else g.to(p.device).clone()
        for t in self._trust():
            if t.neg_update is not None and self._same_layout:
                self._ensure_old()
                assert self._old is not None
                self._old.copy_(t.neg_update.to(self._old.device))
                t.neg_update = self._old
        # The snapshot itself is not saved: after a resume the loaded state is the last good one.
        self._take_snapshot()
        self._snapshot_step = int(state["snapshot_step"]) if state["snapshot_step"] >= 0 else self.steps

    def _window_grads(self) -> Tensor | list[Tensor | None] | None:
        if self._micro == 0:
            return None
        if self._flat is not None:
            return self._flat.cpu().clone()
        return [None if p.grad is None else p.grad.detach().cpu().clone() for p in self.params]

    def iter_actions(self) -> Iterator[dict[str, Any]]:
        return iter(self.actions)
