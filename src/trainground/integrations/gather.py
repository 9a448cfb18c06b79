"""Bringing every process's per-sample evidence to rank 0 at the end of a DDP run.

Each sample is seen by one rank per epoch (``DistributedSampler``; it pads an epoch by
repeating a few samples, so a sample may be seen by two). Probability sums and counts
simply add up over ranks; labels agree wherever they are known; a sample's penultimate
features are those of the rank that saw it last (ties, the padded repeats, averaged);
the per-epoch records travel to rank 0 as tables and are appended there, so
``samples.parquet`` holds every rank's rows, keyed by sample index.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor

from trainground.gradients.distributed import collective_device, is_distributed


def all_reduce(t: Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    """A reduced copy of ``t`` on ``t``'s device (the collective runs where the backend wants it)."""
    if not is_distributed():
        return t
    work = t.detach().to(collective_device(t)).clone()
    dist.all_reduce(work, op=op)
    return work.to(t.device)


def merge_latest_rows(table: Tensor, stamp: Tensor) -> Tensor:
    """Rows of ``table`` from the rank with the latest ``stamp`` per row (ties averaged)."""
    latest = all_reduce(stamp, dist.ReduceOp.MAX)
    mine = ((stamp == latest) & (stamp >= 0)).to(table.dtype)
    total = all_reduce(table * mine.unsqueeze(1))
    count = all_reduce(mine)
    return total / count.clamp_min(1).unsqueeze(1)


def gather_tables(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Every rank's ``frame`` on rank 0 (rank 0's first); an empty list elsewhere."""
    if not is_distributed():
        return [frame]
    frames: list[pd.DataFrame] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None  # type: ignore[list-item]
    dist.gather_object(frame, frames, dst=0)
    return list(frames) if frames is not None else []


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def max_width(width: int) -> int:
    """The largest ``width`` over ranks (a rank that saw no batch has no feature table yet)."""
    return int(all_reduce(torch.tensor([width], dtype=torch.long), dist.ReduceOp.MAX).item())
