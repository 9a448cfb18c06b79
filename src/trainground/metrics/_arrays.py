"""Input checks shared by the metrics: arrays or tensors in, float64 CPU tensors out."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def as_features(x: Tensor | np.ndarray, name: str) -> Tensor:
    """``x`` as a finite ``[N, D]`` float64 CPU tensor (one clear error otherwise)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach().cpu()).double()
    if t.ndim != 2 or t.shape[0] < 2:
        raise ValueError(f"{name}: expected an [N, D] feature matrix with N >= 2, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: features contain NaN or inf")
    return t


def as_images(x: Tensor | np.ndarray, name: str) -> Tensor:
    """``x`` as a ``[N, C, H, W]`` float64 CPU tensor (``[N, H, W]`` gets a channel)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach().cpu()).double()
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise ValueError(f"{name}: expected images [N, C, H, W] or [N, H, W], got shape {tuple(t.shape)}")
    return t
