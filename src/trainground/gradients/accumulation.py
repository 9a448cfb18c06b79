"""The accumulation window: micro-batches weighted by sample count, and K fixed or adapted to the noise scale."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor

from trainground.errors import ConfigError
from trainground.gradients.distributed import window_mean_loss
from trainground.gradients.noise_scale import NoiseScale


class TaskBackward(Protocol):
    """What the Guard needs from a multi-task handler (``trainground.gradients.tasks.TaskGradients``)."""

    def backward(self, losses: Mapping[str, Tensor], *, grad_multiplier: float, loss_scale: float | Tensor) -> None:
        """Write ``combined_gradient * grad_multiplier * loss_scale`` into (accumulate onto) ``param.grad``."""


class AccumulationWindow:
    """The micro-batches of the optimizer step being accumulated.

    The window's gradient is ``sum_i batch_size_i * grad(mean loss_i) / sum_i batch_size_i``:
    exact for windows of unequal micro-batches (a short last window is not over-weighted).
    The gradients themselves live in ``param.grad`` (or the flat buffer); the window keeps the
    counts that turn them into that mean: ``grads * grad_factor`` is the sum over the window
    of ``batch_size * mean gradient``, so the mean is ``grads * grad_factor / samples``.

    Adaptive K (McCandlish et al. 2018): each micro-batch's own gradient norm and the window's
    norm give the gradient noise scale ``B_simple``; every check K becomes
    ``round(B_simple / micro-batch size)`` within ``[2, max_accumulation]`` (two micro-batches
    are the least that lets the noise scale be measured).

    Args:
        accumulation: micro-batches per optimizer step (the start value when adaptive).
        adaptive: adapt K to the gradient noise scale.
        max_accumulation: upper bound of the adaptive K.
        device: where the loss sum and the noise-scale terms live.

    References:
        McCandlish, Kaplan, Amodei, OpenAI Dota Team. An Empirical Model of Large-Batch
        Training. arXiv:1812.06162, 2018.
    """

    def __init__(self, accumulation: int, *, adaptive: bool, max_accumulation: int, device: torch.device) -> None:
        if accumulation < 1 or max_accumulation < 1:
            raise ConfigError("guard.accumulation and guard.max_accumulation must be >= 1")
        self.adaptive, self.max_accumulation = adaptive, max_accumulation
        self.k = max(2, accumulation) if adaptive else accumulation
        self.noise_scale = NoiseScale()
        self.device = device
        self.on_host = device.type == "cpu"
        self.micro = 0
        self.samples: float = 0
        # The window's loss sum: a float on a CPU (read per backward, free there), a tensor elsewhere.
        self.loss_sum: float | Tensor = 0.0 if self.on_host else torch.zeros((), dtype=torch.float32, device=device)
        self.loss_known = True  # False once a micro-batch came without its loss (external gradients)
        self.grad_factor = 1.0
        self.small_sq = torch.zeros((), dtype=torch.float64, device=device)
        self.small_n = torch.zeros((), dtype=torch.float64, device=device)
        self._prev: Tensor | None = None  # adaptive K: the flat buffer before the last micro-batch

    def closes(self, *, force: bool = False) -> bool:
        """Whether ``step`` closes the window now: it holds K micro-batches (or ``force``), and at least one."""
        return self.micro > 0 and (force or self.micro >= self.k)

    def loss_multiplier(self, n: int, *, one_loss: bool, flat: bool, grads: Callable[[], list[Tensor]]) -> int:
        """What the coming micro-batch's loss is multiplied by before its backward.

        Direct (``one_loss``: the loss is one tensor; and the gradients go where autograd puts
        them, not ``flat``, or into a flat buffer of a one-micro-batch window, K = 1 and not
        adaptive: the noise scale needs the sums): the window's first micro-batch then keeps its
        plain mean gradient (multiplier 1, ``grad_factor = n``), so K = 1 costs no extra pass (no
        ``1/n`` pass over the buffer before the transforms). A second micro-batch turns the
        gradients into sums first (one pass over ``grads()``).
        """
        direct = one_loss and (not flat or (self.k == 1 and not self.adaptive))
        if direct and self.micro == 0:
            self.grad_factor = float(n)
            return 1
        if self.grad_factor != 1.0:
            torch._foreach_mul_(grads(), self.grad_factor)
            self.grad_factor = 1.0
        return n

    def add(self, loss: Tensor | float | None, n: int) -> None:
        """Count one micro-batch of ``n`` samples with mean loss ``loss`` (None: not known)."""
        if loss is None:
            self.loss_known = False
        else:
            self.loss_sum = self.loss_sum + (float(loss) if self.on_host else loss) * n
        self.samples = self.samples + n
        self.micro += 1

    def adopt(self, n: int, loss: Tensor | None = None) -> None:
        """Count gradients written by someone else's backward as this window's only micro-batch:
        the mean gradient of ``n`` samples with mean loss ``loss`` (None: not known)."""
        self.grad_factor = float(n)
        self.add(loss, n)

    def observe_micro(self, flat: Tensor, loss_scale: float, n: int) -> None:
        """Adaptive K: this micro-batch's own mean-gradient norm (the buffer's growth since the last
        backward), averaged over the window: the small-batch term of the noise scale."""
        if not self.adaptive:
            return
        if self._prev is None or self._prev.shape != flat.shape:
            self._prev = torch.zeros_like(flat)
        if self.micro == 1:
            self._prev.zero_()
        micro = torch.linalg.vector_norm(flat - self._prev, dtype=torch.float64) ** 2 / (loss_scale * n) ** 2
        self._prev.copy_(flat)
        k = self.micro
        self.small_sq = micro if k == 1 else self.small_sq + (micro - self.small_sq) / k
        self.small_n = torch.full_like(self.small_n, n) if k == 1 else self.small_n + (n - self.small_n) / k

    def observe_window(self, norm: float | Tensor) -> None:
        """Adaptive K: the window's mean-gradient norm, the large-batch term of the noise scale."""
        if self.adaptive and self.micro >= 2:
            big = torch.tensor(norm, dtype=torch.float64) ** 2 if isinstance(norm, float) else norm.double() ** 2
            self.noise_scale.update(self.small_sq, big, self.small_n, float(self.samples))

    @property
    def base_scale(self) -> float:
        """Multiplier from the accumulated gradients to the window's mean gradient."""
        return self.grad_factor / self.samples

    def mean_loss(self, *, tensor: bool) -> float | Tensor | None:
        """The window's sample-weighted mean loss: a float, or a float32 0-dim tensor (``tensor``);
        None when not known."""
        if not self.loss_known:
            return None
        # The same on every DDP rank (an all-reduce of two numbers; local without a process group).
        loss = window_mean_loss(self.loss_sum, self.samples)
        if not tensor:
            return loss  # type: ignore[return-value]  # a float on the host path
        return torch.as_tensor(loss, device=self.device).float()

    def reset(self) -> None:
        """Empty the window (after a step)."""
        self.micro = 0
        self.samples = 0
        self.loss_sum = 0.0 if self.on_host else torch.zeros_like(self.loss_sum)  # type: ignore[arg-type]
        self.loss_known = True
        self.grad_factor = 1.0

    def noise(self) -> float:
        """The current noise-scale estimate (one host read), NaN when K is fixed."""
        return float(self.noise_scale.value) if self.adaptive else math.nan

    def adapt(self, noise: float) -> dict[str, Any] | None:
        """Set K from the noise scale; returns the change's evidence, or None when K stays."""
        micro = max(float(self.small_n.item()), 1.0)
        # inf (no measurable signal left) means "as large as allowed"; a negative estimate "as small".
        ratio = min(max(noise / micro, 0.0), float(self.max_accumulation))
        target = int(min(max(round(ratio), 2), self.max_accumulation))
        if target == self.k:
            return None
        evidence = {"noise_scale": noise, "micro_batch": micro, "from": self.k, "to": target}
        self.k = target
        return evidence

    def state_dict(self, grads: Tensor | list[Tensor | None] | None) -> dict[str, Any]:
        """The open window (``grads``: its gradients, saved by the caller's layout)."""
        return {"micro": self.micro, "samples": torch.tensor(float(self.samples), dtype=torch.float64),
                "loss_sum": torch.as_tensor(self.loss_sum).detach().double().cpu(),
                "grad_factor": self.grad_factor, "grads": grads}

    def load_state_dict(self, window: dict[str, Any]) -> None:
        self.micro = int(window["micro"])
        self.samples = float(window["samples"])
        loss_sum = window["loss_sum"]
        self.loss_sum = float(loss_sum) if self.on_host else loss_sum.to(self.device, torch.float32)
        self.grad_factor = float(window.get("grad_factor", 1.0))
        self.loss_known = True  # external gradients close their window at once: never saved open
