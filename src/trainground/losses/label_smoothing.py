"""Label smoothing: cross-entropy against ``(1 - eps) * one_hot + eps / C`` instead of the hard label."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainground.errors import ConfigError


def check_smoothing(smoothing: float) -> float:
    """``smoothing`` if it is in ``[0, 1)``, else a ``ConfigError``."""
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {smoothing}")
    return float(smoothing)


def smooth_labels(target: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """Soft targets ``(1 - smoothing) * one_hot(target) + smoothing / num_classes``.

    Args:
        target: ``[N]`` class ids.
        num_classes: number of classes ``C``.
        smoothing: mass moved from the given class to the uniform distribution.

    Returns:
        ``[N, C]`` float32 rows summing to 1.

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. "Rethinking the Inception Architecture for
        Computer Vision." CVPR 2016 (section 7). https://arxiv.org/abs/1512.00567
    """
    soft = torch.full((len(target), num_classes), smoothing / num_classes, device=target.device)
    return soft.scatter_add_(1, target.view(-1, 1), torch.full_like(soft[:, :1], 1.0 - smoothing))


def smoothed_cross_entropy(logits: Tensor, target: Tensor, smoothing: float = 0.0) -> Tensor:
    """Per-sample cross-entropy with smoothed labels, ``[N]`` (no reduction).

    Written as ``(1 - eps) * nll + eps * mean_c(-log p_c)``: the same value as the soft-target
    form, without materialising the ``[N, C]`` target matrix. Computed in float32 even under
    autocast, since log-softmax in half precision loses the small probabilities.

    Args:
        logits: ``[N, C]`` unnormalised scores.
        target: ``[N]`` class ids.
        smoothing: label smoothing ``eps`` in ``[0, 1)``; 0 is plain cross-entropy.

    References:
        Szegedy et al. 2016 (see :func:`smooth_labels`); Mueller, Kornblith, Hinton. "When
        Does Label Smoothing Help?" NeurIPS 2019. https://arxiv.org/abs/1906.02629
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    nll = -log_p.gather(1, target.view(-1, 1)).squeeze(1)
    if smoothing == 0.0:
        return nll
    return (1.0 - smoothing) * nll - smoothing * log_p.mean(dim=-1)
