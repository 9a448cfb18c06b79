"""Mixed precision for the Guard: the autocast dtype and the loss scaling (``GradScaler``) that goes with it."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
from torch import Tensor

from trainground.errors import ConfigError

AmpMode = Literal["off", "auto", "bf16", "fp16"]


def amp_mode(amp: AmpMode, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether the loss needs a ``GradScaler``) for ``amp`` on ``device``.

    fp16 has a narrow exponent range, so its gradients underflow without loss scaling; bf16
    has float32's range and needs none.
    """
    if amp == "off":
        return None, False
    if amp == "auto":
        return (torch.float16, True) if device.type == "cuda" else (torch.bfloat16, False)
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("guard.amp 'fp16' needs a CUDA device; use 'bf16' or 'auto' on CPU")
        return torch.float16, True
    return torch.bfloat16, False


_NO_AUTOCAST = contextlib.nullcontext()


class LossScaling:
    """Autocast for the forward pass and, for fp16, the loss scale: scale before backward,
    unscale before any transform reads a norm, step through the scaler.

    Args:
        amp: the precision mode (``GuardConfig.amp``).
        device: the device of the parameters.
    """

    def __init__(self, amp: AmpMode, device: torch.device) -> None:
        self.device = device
        self.dtype, use_scaler = amp_mode(amp, device)
        # Any object with GradScaler's protocol works (tests put a fake one here).
        self.scaler: Any = torch.amp.GradScaler(device.type) if use_scaler else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context for the forward pass: autocast in the configured precision (a no-op when off)."""
        if self.dtype is None:
            return _NO_AUTOCAST  # reusable; one object fewer per forward
        return torch.autocast(self.device.type, dtype=self.dtype)

    def loss_scale(self) -> float:
        """The factor ``backward`` multiplies the loss by (1.0 without a scaler)."""
        return self.scaler.get_scale() if self.scaler is not None else 1.0

    def scale(self, loss: Tensor) -> Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale (before any transform sees a norm)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer, *, scaled: bool = True) -> None:
        """Step the optimizer; through the scaler (which skips inf/NaN steps and adapts the
        scale) when the gradients were scaled by it."""
        if scaled and self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
