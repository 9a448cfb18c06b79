"""Curvature-aware trust region: shrink the update when a secant says it overshoots the valley."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from trainground.gradients.context import GradContext, HostContext, ScalarState
from trainground.gradients.secant_gate import GATE_FIELDS, SecantGate
from trainground.gradients.secant_math import (  # re-exported: the functional API lives here too
    secant_ratio,
    secant_ratio_host,
    trust_scale_update,
    trust_scale_update_host,
)

__all__ = ["SecantTrustRegion", "secant_ratio", "secant_ratio_host", "trust_scale_update", "trust_scale_update_host"]


class SecantTrustRegion(SecantGate, ScalarState):
    """Put it after ``SpikeSkip`` in a chain: a step marked for skipping does not feed it.

    Scale the optimizer's update by ``s`` in (0, 1], with ``s`` steered by a secant curvature estimate.

    Maths. Let ``u_t`` be the update applied at step t and ``g_t``, ``g_{t+1}`` the (unclipped)
    gradients before and after it. Along ``u_t`` the secant gives the curvature
    ``C_t = <g_{t+1} - g_t, u_t>`` (``= u^T H u`` on a quadratic) and the descent rate
    ``D_t = -<g_t, u_t>``. The step was ``rho_t = C_t / D_t`` times the length of the 1-D
    minimiser (:func:`secant_ratio`). Mini-batch noise enters both terms, so ``rho`` is the ratio
    of their EMAs (decay ``beta``), which is unbiased by the EMA's start (same weights on top and
    bottom). For SGD ``u = -lr g_t``: ``rho = 1 - <g_{t+1}, g_t> / |g_t|^2``, i.e. 0 for agreeing
    successive gradients, 1 for uncorrelated ones (pure noise) and 2 for opposite ones
    (bouncing across a valley). When ``rho > target`` the trust scale shrinks by ``target / rho``
    so the next steps land near the minimiser (Newton's step length along ``u``); otherwise it
    regrows by ``grow`` per step up to 1. Pure noise gives ``rho ~ 1`` and the stationary phase
    of SGD slightly more (successive gradients anti-correlate), so with ``target = 1`` the scale
    decays slowly late in training, like an lr schedule. It is a clip of the *update*: on Adam, where a gradient
    clip cancels out (the update is scale-invariant), it still bounds the step. Cost per
    measured step: two dot products (gradient . update) plus the Guard's copy and difference
    of the parameters (on a CPU the scale itself is applied through the lr, no extra pass).

    The secant uses gradients of different mini-batches, so it measures the curvature plus the
    noise; the EMA averages the noise out of both terms before their ratio is taken.

    The evidence gate (``loss_gate=True``, the default; principles 1-8 in
    :mod:`trainground.gradients.secant_gate`): the scale shrinks only on evidence of overshoot
    (a rising loss, or a significant overshoot on a flat one, by a decade at most there);
    otherwise it regrows, and the secant never takes it below ``min_scale``.

    Args:
        target: the largest tolerated ``rho`` (1.0: on average no further than the 1-D minimiser).
        beta: EMA decay of ``C`` and ``D``.
        grow: largest per-step growth of the scale.
        min_factor: largest per-step shrink (0.1: ten times smaller at most).
        min_scale: floor of the secant's shrinking (principle 3 in :mod:`~trainground.gradients.secant_gate`).
        loss_gate: shrink only on evidence of overshoot (see above); off: whenever ``rho > target``
            (down to ``min_scale``).
        rise_overshoot: principle 8 (a rising loss needs a significant overshoot or a doubled loss); off by default.
        every: measure the secant on every ``every``-th step only (the measurement costs the
            Guard a copy and a difference of the weights plus two dot products; on a CPU these
            passes are most of the trust region's cost). The EMAs then decay by ``beta**every``
            and the scale moves by the per-step factor to the power ``every`` per measurement,
            so the time constants stay those of ``every = 1``; the applied scale is still used
            on every step.
        sample: on the Guard's CPU path, measure the secant on one parameter element in ``sample``
            (cache lines of 16 floats, the sample moving by one line per measured step;
            :mod:`trainground.gradients.sampled`). It applies only where the passes are
            memory-bound: no flat gradient buffer (tensors of > 64k elements on average) and at
            least 2**18 parameters; elsewhere, and on the tensor path (CUDA), every element is
            read. 1 (this class's default; ``GuardConfig.trust_sample`` is 8): every element.

    References:
        Secant (quasi-Newton) curvature along the step: Barzilai, Borwein. Two-point step size
        gradient methods. IMA J. Numer. Anal. 1988. Successive-gradient correlation as an
        overshoot test: Pflug 1983; Lang, Xiao, Zhang. Using Statistics to Automate Stochastic
        Optimization. NeurIPS 2019.
    """

    def __init__(self, target: float = 1.0, beta: float = 0.9, grow: float = 1.02, min_factor: float = 0.1,
                 min_scale: float = 0.01, every: int = 1, loss_gate: bool = True, rise_overshoot: bool = False,
                 sample: int = 1) -> None:
        self.target, self.beta, self.grow, self.min_factor, self.min_scale = target, beta, grow, min_factor, min_scale
        self.loss_gate, self.rise_overshoot = loss_gate, rise_overshoot
        self._init_gate()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = int(every)
        if sample < 1:
            raise ValueError(f"sample must be >= 1, got {sample}")
        self.sample = int(sample)
        self.tick = 0  # steps seen (host counter): a step with tick % every == 0 measures
        self.scale = torch.ones(())
        self.descent = torch.zeros(())  # EMA of D
        self.curvature = torch.zeros(())  # EMA of C
        self.last_descent = torch.zeros(())  # D of the last step, awaiting its C
        self.rho = torch.zeros(())
        self.neg_update: Tensor | None = None  # -u_t (flat), owned by the Guard

    _fields: ClassVar[dict[str, torch.dtype]] = {
        name: torch.float32 for name in ("scale", "descent", "curvature", "last_descent", "rho", *GATE_FIELDS)
    }

    def _to(self, device: torch.device) -> None:
        self._device_state(device)

    def sample_phase(self) -> int:
        """The phase of the sample the coming measurement reads (``sample`` > 1): it moves by one
        per measured step, so every parameter element is read once every ``sample`` measurements."""
        return (self.tick // self.every) % self.sample

    def measures(self) -> bool:
        """Whether the coming step's update is measured (the Guard then keeps ``-u`` for the secant)."""
        return self.tick % self.every == 0

    def scale_tensor(self) -> Tensor:
        """The current trust scale as a CPU tensor (snapshots)."""
        return self._state_tensor("scale")

    def set_scale(self, scale: Tensor) -> None:
        """Set the scale (a rollback's cut); it becomes the flat loss's reference."""
        self.scale = float(scale) if self._on_host else scale.to(self.scale.device, self.scale.dtype)
        self.flat_ref = self.scale
        self.flat_locked = 0.0 if self._on_host else torch.zeros_like(self.flat_locked)

    def host(self, ctx: HostContext) -> None:
        """The same trust region in floats (the Guard's CPU path): one dot product, one read."""
        if ctx.flat is None and ctx.update_views is None and ctx.sampled is None:
            return  # parameters of mixed dtype/device: no update buffer, no secant
        self._host_state()
        if self.neg_update is not None and not ctx.reads(self.neg_update):
            self.reset_direction()  # the Guard changed its update layout: no secant across the switch
        if self.neg_update is not None and ctx.keep > 0:  # a skipped step cannot be valid: no dot
            along = -ctx.dot(self.neg_update) * ctx.base_scale
            curvature = along + self.last_descent
            if math.isfinite(curvature) and self.last_descent != 0:
                b = self.beta ** self.every
                self.curvature = b * self.curvature + (1 - b) * curvature
                self.descent = b * self.descent + (1 - b) * self.last_descent
                overshoot = self._overshoot_host(curvature, self.last_descent, self._slow)
                min_factor, floor = self._gate_host(ctx.loss, overshoot)
                self.scale = trust_scale_update_host(
                    self.scale, secant_ratio_host(self.descent, self.curvature), target=self.target,
                    grow=self.grow, min_factor=min_factor, min_scale=floor, power=self.every)
        if self.neg_update is not None:
            self.rho = secant_ratio_host(self.descent, self.curvature)
        ctx.update_scale = ctx.update_scale * self.scale

    def __call__(self, ctx: GradContext) -> None:
        if ctx.flat is None:
            # Parameters of mixed dtype/device have no flat buffer: no secant, the update stays as is.
            return
        self._to(ctx.flat.device)
        if self.neg_update is not None and self.neg_update.numel() != ctx.flat.numel():
            self.reset_direction()  # kept in the CPU path's sampled layout: no secant across the switch
        if self.neg_update is not None:
            # C_t = <g_{t+1} - g_t, u_t> = <g_{t+1}, u_t> + D_t, with the raw (unclipped) gradient.
            along = -torch.dot(ctx.flat, self.neg_update) * ctx.base_scale
            curvature = along + self.last_descent
            # A step already marked for skipping (spike, NaN) says nothing about the curvature:
            # a poisoned batch's gradient must not shrink the trust region for the healthy steps.
            valid = torch.isfinite(curvature) & (self.last_descent != 0) & (ctx.keep > 0)
            b = self.beta ** self.every
            self.curvature = torch.where(valid, b * self.curvature + (1 - b) * curvature, self.curvature)
            self.descent = torch.where(valid, b * self.descent + (1 - b) * self.last_descent, self.descent)
            self.rho = secant_ratio(self.descent, self.curvature)
            overshoot = self._overshoot_tensor(curvature, self.last_descent, self._slow, valid)
            min_factor, floor = self._gate_tensor(ctx.loss, valid, overshoot)
            new = trust_scale_update(self.scale, self.rho, target=self.target, grow=self.grow,
                                     min_factor=min_factor, min_scale=floor, power=self.every)
            self.scale = torch.where(valid, new, self.scale)
        ctx.update_scale = ctx.update_scale * self.scale

    def after_step(self, ctx: GradContext | HostContext, neg_update: Tensor) -> None:
        """Record ``D_t = -<g_t, u_t>`` with the raw gradient; ``neg_update`` is ``-u_t``.

        On a step that is not measured (``every > 1``) nothing is recorded and the next step
        takes no secant.
        """
        measured = self.measures()
        self.tick += 1
        if not measured:
            self.neg_update = None
            self.last_descent = 0.0 if self._on_host else torch.zeros_like(self.last_descent)
            return
        if isinstance(ctx, HostContext):
            raw = 0.0
            if ctx.keep > 0:
                raw = ctx.dot(neg_update) * ctx.base_scale / max(ctx.applied_scale, 1e-30)
            self.last_descent = raw if math.isfinite(raw) else 0.0
            self.neg_update = neg_update
            return
        assert ctx.flat is not None
        raw = torch.dot(ctx.flat, neg_update) * ctx.base_scale / ctx.applied_scale.clamp_min(1e-30)
        self.last_descent = torch.where(torch.isfinite(raw) & (ctx.keep > 0), raw, torch.zeros_like(raw))
        self.neg_update = neg_update

    def reset_direction(self) -> None:
        """Forget the last update (after a rollback the parameters jumped; no secant across it)."""
        self.neg_update = None
        self.last_descent = 0.0 if self._on_host else torch.zeros_like(self.last_descent)

    def reset_statistics(self) -> None:
        """Forget the direction and the EMAs (after a rollback to an earlier state)."""
        self.reset_direction()
        for name in ("descent", "curvature", "rho", "excess", "excess_sq", "excess_weight"):
            setattr(self, name, 0.0 if self._on_host else torch.zeros_like(getattr(self, name)))

    # Hooks the Guard calls (its rollback and its flat update buffer; see gradients/rollback.py).
    def snapshot_state(self) -> Tensor:
        """Rollback hook: the trust scale of the healthy state."""
        return self.scale_tensor()

    def rollback(self, saved: Tensor, *, shrink: float) -> Tensor:
        """Rollback hook: the steps that led to the spike were too long. Restart from the healthy
        state's scale times ``shrink`` (compounding over repeated rollbacks: each one starts from
        a smaller step), with no secant across the jump."""
        scale = saved * shrink
        self.set_scale(scale)
        self.reset_direction()
        return scale.clone()

    def adopt_update_buffer(self, buffer: Tensor) -> None:
        """Update-buffer hook: keep ``-u`` in the Guard's (re)allocated flat update buffer."""
        if self.neg_update is not None and self.neg_update is not buffer and self.neg_update.numel() == buffer.numel():
            self.neg_update = buffer.copy_(self.neg_update.to(buffer.device))

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target, "beta": self.beta, "grow": self.grow, "min_factor": self.min_factor,
                "every": self.every, "sample": self.sample, "tick": self.tick, "loss_gate": self.loss_gate, "rise_overshoot": self.rise_overshoot,
                "min_scale": self.min_scale, **{name: self._state_tensor(name) for name in self._fields},
                # Saved so a resumed run computes the same secant as an uninterrupted one.
                "neg_update": None if self.neg_update is None else self.neg_update.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("target", "beta", "grow", "min_factor", "min_scale"):
            setattr(self, key, float(state[key]))
        self.every, self.tick = int(state.get("every", 1)), int(state.get("tick", 0))
        self.sample = int(state.get("sample", 1))  # checkpoints from before sampling read every element
        self.loss_gate = bool(state.get("loss_gate", False))
        self.rise_overshoot = bool(state.get("rise_overshoot", False))
        # Checkpoints from before the gate or its flat budget: zeros, a reference of 1.
        state = {**{name: torch.zeros(()) for name in self._fields}, "flat_ref": torch.ones(()), **state}
        self._load_tensors(state)
        saved = state.get("neg_update")
        self.neg_update = None if saved is None else saved.clone()
