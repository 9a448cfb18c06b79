"""How several task losses are weighted: static, uncertainty (Kendall et al.), DWA (Liu et al.).

Every weighting is an ``nn.Module`` with ``forward(losses) -> weighted losses`` (a dict with
the same task names, summing to the total loss) and ``weights() -> [T]`` (detached, for
logging), so a multi-task loss or a plain loop can swap one for another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from trainground.errors import ConfigError

WeightingName = Literal["static", "uncertainty", "dwa"]


def _check_names(expected: Sequence[str], losses: Mapping[str, Tensor]) -> None:
    if list(losses) != list(expected):
        raise ConfigError(f"task losses {list(losses)} do not match the tasks {list(expected)} (same names, same order)")


class StaticWeighting(nn.Module):
    """Fixed weights: ``w_t * L_t``.

    Args:
        tasks: task names, in order.
        weights: ``{task: weight}``; tasks not named get 1.
    """

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.tasks = list(tasks)
        unknown = set(weights or {}) - set(self.tasks)
        if unknown:
            raise ConfigError(f"static task weights name unknown tasks {sorted(unknown)}; tasks: {self.tasks}")
        self.register_buffer("task_weights", torch.tensor([float((weights or {}).get(t, 1.0)) for t in self.tasks]))

    def weights(self) -> Tensor:
        return self.task_weights.detach()

    def forward(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_names(self.tasks, losses)
        return {t: self.task_weights[i] * losses[t] for i, t in enumerate(self.tasks)}


class UncertaintyWeighting(nn.Module):
    """Learned homoscedastic-uncertainty weights: ``exp(-s_t) * L_t + s_t / 2`` with
    ``s_t = log sigma_t^2`` an ``nn.Parameter`` (give them to the optimizer).

    At the optimum ``exp(-s_t) = 1 / (2 L_t)``: a task whose loss stays large (noisy, hard,
    or on a larger scale) is down-weighted. The ``s_t / 2`` term is Kendall et al.'s
    ``log sigma`` for a softmax likelihood; it stops ``s_t`` from growing without bound.

    Args:
        tasks: task names, in order.
        init: initial ``s_t`` (0: every weight starts at 1).

    References:
        Kendall, Gal, Cipolla. "Multi-Task Learning Using Uncertainty to Weigh Losses for
        Scene Geometry and Semantics." CVPR 2018. https://arxiv.org/abs/1705.07115
    """

    def __init__(self, tasks: Sequence[str], *, init: float = 0.0) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))

    def weights(self) -> Tensor:
        return torch.exp(-self.log_vars.detach())

    def forward(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_names(self.tasks, losses)
        s = self.log_vars
        return {t: torch.exp(-s[i]) * losses[t] + 0.5 * s[i] for i, t in enumerate(self.tasks)}


def dwa_weights(previous: Tensor, before_previous: Tensor, *, temperature: float = 2.0) -> Tensor:
    """Dynamic weight average: ``T * softmax(r / temperature)`` with ``r_t = L_t(e-1) / L_t(e-2)``.

    A task whose loss fell slowly over the last epoch gets more weight; the weights sum to
    the number of tasks.

    Args:
        previous: ``[T]`` mean task losses of the last epoch.
        before_previous: ``[T]`` mean task losses of the epoch before.
        temperature: softness; large values give equal weights.

    References:
        Liu, Johns, Davison. "End-to-End Multi-Task Learning with Attention." CVPR 2019
        (equation 7). https://arxiv.org/abs/1803.10704
    """
    rate = previous / before_previous.clamp_min(torch.finfo(previous.dtype).tiny)
    return len(previous) * torch.softmax(rate / temperature, dim=0)


class DynamicWeightAverage(nn.Module):
    """DWA weights updated once per epoch from each task's mean training loss.

    Call the module on every training batch (it adds each task's detached loss to the
    epoch's sums, on the device) and :meth:`end_epoch` after the last one. The first two
    epochs use weights of 1, as in Liu et al.

    Args:
        tasks: task names, in order.
        temperature: softness of the weights (2 in the paper).

    References:
        Liu, Johns, Davison 2019 (see :func:`dwa_weights`).
    """

    def __init__(self, tasks: Sequence[str], *, temperature: float = 2.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"DWA temperature must be > 0, got {temperature}")
        self.tasks, self.temperature = list(tasks), float(temperature)
        n = len(self.tasks)
        self.register_buffer("task_weights", torch.ones(n))
        self.register_buffer("epoch_sums", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("epoch_batches", torch.zeros((), dtype=torch.float64))
        self.register_buffer("history", torch.zeros(2, n, dtype=torch.float64))  # [e-2, e-1] mean losses
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def weights(self) -> Tensor:
        return self.task_weights.detach()

    def forward(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_names(self.tasks, losses)
        if self.training:
            with torch.no_grad():
                self.epoch_sums += torch.stack([losses[t].detach().double() for t in self.tasks]).to(self.epoch_sums.device)
                self.epoch_batches += 1
        return {t: self.task_weights[i] * losses[t] for i, t in enumerate(self.tasks)}

    @torch.no_grad()
    def end_epoch(self) -> Tensor:
        """Close the epoch: record its mean losses and return the weights of the next one."""
        means = self.epoch_sums / self.epoch_batches.clamp_min(1)
        self.history.copy_(torch.stack([self.history[1], means]))
        self.epochs_seen += 1
        self.epoch_sums.zero_()
        self.epoch_batches.zero_()
        if int(self.epochs_seen) >= 2:  # one host sync per epoch
            self.task_weights.copy_(dwa_weights(self.history[1], self.history[0], temperature=self.temperature).float())
        return self.weights()


WEIGHTINGS: dict[str, type[nn.Module]] = {
    "static": StaticWeighting, "uncertainty": UncertaintyWeighting, "dwa": DynamicWeightAverage,
}


def make_weighting(name: WeightingName, tasks: Sequence[str], **options: float | Mapping[str, float]) -> nn.Module:
    """A weighting by name (``static`` takes ``weights``, ``uncertainty`` ``init``, ``dwa`` ``temperature``)."""
    if name not in WEIGHTINGS:
        raise ConfigError(f"unknown task weighting {name!r}; known: {', '.join(WEIGHTINGS)}")
    try:
        return WEIGHTINGS[name](tasks, **options)
    except TypeError as err:
        raise ConfigError(f"task weighting {name!r}: {err}") from None
