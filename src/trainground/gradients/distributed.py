"""What the Guard needs to decide alike on every process of a distributed (DDP) run.

Under ``DistributedDataParallel`` the gradients are already all-reduced, so every norm
and clip threshold is the same on every rank; the loss is not (each rank sees its own
micro-batches). The spike skip and the trust region's loss gate read the loss, so a
spike seen by one rank would make that rank alone skip its step: the weights diverge and
the next collective deadlocks or mixes models. The window's mean loss is therefore
averaged over all processes, weighted by their sample counts, before any transform reads
it; every skip, rollback and snapshot decision then follows from identical numbers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def collective_device(like: Tensor | None = None) -> torch.device:
    """Where a tensor must live for the process group's backend (NCCL: the current CUDA device)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return like.device if like is not None and like.device.type == "cpu" else torch.device("cpu")


def window_mean_loss(loss_sum: float | Tensor, samples: float) -> float | Tensor:
    """``loss_sum / samples`` over every process (one all-reduce of two numbers; local without DDP).

    Args:
        loss_sum: this process's sum of ``batch mean loss * batch size`` over the window.
        samples: this process's samples in the window.

    Returns:
        The global mean loss, as a float when ``loss_sum`` is one, else a tensor on its device.
    """
    if not is_distributed():
        return loss_sum / samples
    like = loss_sum if isinstance(loss_sum, Tensor) else None
    both = torch.stack([torch.as_tensor(loss_sum, dtype=torch.float64).detach().reshape(()).cpu(),
                        torch.tensor(float(samples), dtype=torch.float64)]).to(collective_device(like))
    dist.all_reduce(both)
    mean = both[0] / both[1]
    if like is None:
        return float(mean)
    return mean.to(like.device, like.dtype)
