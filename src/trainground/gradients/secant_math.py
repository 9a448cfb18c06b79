"""The secant trust region's maths: the step as a multiple of the 1-D minimiser, and the scale update."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def secant_ratio(descent: Tensor, curvature: Tensor) -> Tensor:
    """``rho = curvature / descent``: the applied step as a multiple of the 1-D quadratic minimiser.

    Along the last update ``u`` the loss is modelled as ``phi(a) = f - a*D + a^2*C/2`` with
    ``D = -<g_t, u>`` (descent rate) and ``C = <g_{t+1} - g_t, u>`` (secant curvature, ``u^T H u``
    for a quadratic). The step taken is ``a = 1``; the minimiser is ``a* = D / C``, so
    ``rho = 1 / a* = C / D``. ``rho < 1``: short of the minimum; ``rho = 2``: the loss did not
    decrease at all; ``rho > 2``: the step went uphill (divergence of a quadratic).
    Returns ``+inf`` when ``D <= 0 < C`` (uphill and curving up) and ``-inf`` when ``C <= 0``.
    """
    safe = torch.where(descent > 0, descent, torch.ones_like(descent))
    ratio = curvature / safe
    return torch.where(descent > 0, ratio, torch.where(curvature > 0, float("inf"), float("-inf")))


def trust_scale_update(scale: Tensor, rho: Tensor, *, target: float, grow: float, min_factor: float | Tensor,
                       min_scale: float, power: int = 1) -> Tensor:
    """Next trust scale: ``scale * clamp(target / rho, min_factor, grow)``, at most 1.

    A step longer than ``target`` times the 1-D minimiser shrinks the next ones in proportion
    (at most by ``min_factor`` per step); shorter steps let the scale grow back by ``grow`` per
    step, never above 1 (the optimizer's own step size is a ceiling, never exceeded).
    ``min_factor >= grow`` forbids shrinking: the scale then grows by ``grow`` whatever ``rho``.
    The secant never takes the scale below ``min_scale`` (a floor); a scale already below it
    (a rollback's cut) is kept and may only grow.
    ``power``: steps this update stands for (a secant measured every ``power`` steps).
    """
    factor = torch.where(rho > 0, target / rho.clamp_min(1e-12), torch.full_like(rho, grow))
    if isinstance(min_factor, Tensor):  # clamp takes both bounds as tensors or both as numbers
        factor = torch.maximum(factor, min_factor.to(factor.dtype)).clamp_max(grow)
    else:
        factor = factor.clamp(min(min_factor, grow), grow)
    floor = scale.clamp_max(min_scale)
    return torch.maximum(scale * factor ** power, floor).clamp_max(1.0)


def secant_ratio_host(descent: float, curvature: float) -> float:
    """:func:`secant_ratio` in floats."""
    if descent > 0:
        return curvature / descent
    return math.inf if curvature > 0 else -math.inf


def trust_scale_update_host(scale: float, rho: float, *, target: float, grow: float, min_factor: float,
                            min_scale: float, power: int = 1) -> float:
    """:func:`trust_scale_update` in floats."""
    factor = target / max(rho, 1e-12) if rho > 0 else grow
    return min(max(scale * min(max(factor, min_factor), grow) ** power, min(scale, min_scale)), 1.0)
