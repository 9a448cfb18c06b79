"""Level normalisation: divide each step's gradients by the norm's short running level.

Issue 15, sixth pass, second candidate for a recurrent model under Adam (principle and adoption
rule written before its runs, benchmarks/README.md "C, extended, sixth pass"). Measured first
(the plain LSTM on the adding problem, no clipping): the first ~10 steps' global norms are ~2.2,
the plateau's ~0.2 (10x smaller). Adam's bias-corrected second moment averages g^2 with nearly
equal weights over its first ~1/(1-beta2) = 1000 steps, so those ten steps weigh as much as a
thousand plateau steps and the plateau's steps are ~sqrt(1 + 10 * 100 / t) times too short (1.8x
at step 500; measured before: 1.5-2.1x). No clip judged on past norms can cut them (nothing has
been seen yet; the envelope clip, the first candidate, failed); what can be changed is the scale
Adam's long memory sees: dividing every gradient by an EMA of the norm with Adam's first-moment
horizon (decay ``beta1`` = 0.9, ~10 steps) removes the norm's slow trend (the fall from the first
steps to the plateau, the rise at the plateau's end) and keeps its faster fluctuations (a larger
batch still counts larger, unlike the rejected per-step normalisation of the fourth pass). 0.9 is
Adam's default beta1, not tuned. Meant for optimizers invariant to a constant gradient scale
(Adam and its kin): under SGD it changes what the learning rate means.

``only_up`` (the sixth pass's third candidate, written after the second's one lost LSTM order run was
traced, so not independent of that task's seeds 2-3): undo only a FALL of the level. Adam's second
moment remembers a past level for ~1/(1-beta2) steps (a remembered norm decays by sqrt(beta2) per step),
so the scale is ``peak / level``, ``peak`` the largest level decayed at sqrt(beta2) = sqrt(0.999) per
step (Adam's default, not tuned): never below 1. A level rising above everything Adam remembers passes
unchanged, so Adam's own lengthening of its steps as a run leaves its plateau (the first moment grows
before the second) is kept.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from trainground.gradients.context import GradContext, HostContext, ScalarState


class LevelNormalize(ScalarState):
    """Scale the gradients by ``1 / level``, ``level`` the bias-corrected EMA (decay ``decay``) of the
    global norm including this step's. A non-finite or zero norm neither scales nor moves the level.

    Args:
        decay: EMA decay of the level (0.9: Adam's beta1 horizon, ~10 steps).
        only_up: scale by ``peak / level`` (>= 1) instead of ``1 / level`` (module docstring).
        beta2: the second-moment decay whose memory ``peak`` models (``only_up``; Adam's 0.999).
    """

    _fields: ClassVar[dict[str, torch.dtype]] = {"ema": torch.float32, "weight": torch.float32,
                                                 "peak": torch.float32}

    def __init__(self, decay: float = 0.9, *, only_up: bool = False, beta2: float = 0.999) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0 < beta2 <= 1:
            raise ValueError(f"beta2 must be in (0, 1], got {beta2}")
        self.decay, self.only_up, self.beta2 = float(decay), bool(only_up), float(beta2)
        self.ema = torch.zeros((), dtype=torch.float32)  # EMA of the norm (not bias-corrected)
        self.weight = torch.zeros((), dtype=torch.float32)  # 1 - decay**n: the bias correction
        self.peak = torch.zeros((), dtype=torch.float32)  # largest level, decayed at sqrt(beta2)

    def host(self, ctx: HostContext) -> None:
        self._host_state()
        norm = ctx.norm
        if not (math.isfinite(norm) and norm > 0):
            return
        self.ema = self.decay * self.ema + (1 - self.decay) * norm
        self.weight = self.decay * self.weight + (1 - self.decay)
        level = self.ema / self.weight
        if self.only_up:
            self.peak = max(level, self.peak * math.sqrt(self.beta2))
            ctx.scale = ctx.scale * (self.peak / level)
        else:
            ctx.scale = ctx.scale / level

    def __call__(self, ctx: GradContext) -> None:
        self._device_state(ctx.raw_norm.device)
        norm = ctx.norm
        ok = torch.isfinite(norm) & (norm > 0)
        d = self.decay
        self.ema = torch.where(ok, d * self.ema + (1 - d) * norm, self.ema).to(torch.float32)
        self.weight = torch.where(ok, d * self.weight + (1 - d), self.weight).to(torch.float32)
        level = self.ema / self.weight.clamp_min(1e-30)
        top = torch.ones_like(level)
        if self.only_up:
            peak = torch.maximum(level, self.peak * math.sqrt(self.beta2))
            self.peak = torch.where(ok, peak, self.peak).to(torch.float32)
            top = self.peak
        ctx.scale = ctx.scale * torch.where(ok, top / level.clamp_min(1e-30), torch.ones_like(norm))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "only_up": self.only_up, "beta2": self.beta2,
                **{name: self._state_tensor(name) for name in self._fields}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.only_up, self.beta2 = bool(state.get("only_up", False)), float(state.get("beta2", 0.999))
        self._load_tensors({"peak": torch.zeros((), dtype=torch.float32), **state})
