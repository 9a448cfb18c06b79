"""Effective rank and spread of the penultimate representation (what the classifier head sees)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from trainground.monitors.base import Monitor
from trainground.monitors.table import empty_table, long_table


def effective_rank(features: Tensor) -> Tensor:
    """Effective rank of ``[N, D]`` features: ``exp`` of the entropy of the normalised
    singular values of the centred matrix; between 1 and min(N, D), 0 when all rows are equal.

    References:
        Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007.
    """
    x = features.float()
    return _centred_effective_rank(x - x.mean(dim=0, keepdim=True))


def _centred_effective_rank(x: Tensor) -> Tensor:
    """:func:`effective_rank` of features already centred (column means subtracted)."""
    # Singular values from the eigenvalues of the smaller Gram matrix: several times faster
    # than an SVD of the tall matrix. Eigenvalues below the numerical-rank tolerance of
    # float32 (max * size * eps, as in numpy.linalg.matrix_rank) are rounding noise and set
    # to 0, or hundreds of them would add spurious rank.
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    try:
        if not torch.isfinite(gram).all():  # float32 overflow of huge features: redo in float64
            raise torch.linalg.LinAlgError("overflow")
        eig = torch.linalg.eigvalsh(gram)
        tol = eig.max().clamp_min(0) * gram.shape[0] * torch.finfo(eig.dtype).eps
        s = torch.where(eig > tol, eig, torch.zeros_like(eig)).sqrt()
    except torch.linalg.LinAlgError:
        try:
            s = torch.linalg.svdvals(x.double())
        except torch.linalg.LinAlgError:
            return torch.full((), float("nan"), device=x.device)
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        return torch.zeros((), device=x.device)
    p = s / total
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return torch.exp(entropy)


def representation_stats(features: Tensor) -> dict[str, float]:
    """``effective_rank``, ``width``, ``feature_rms`` (root mean square entry) and ``spread``:
    the share of the features' second moment that varies between samples
    (trace of the covariance / mean squared norm; 0 when every sample maps to the same point)."""
    x = features.float()
    row_squares = x.square().sum(dim=1)
    if not bool(torch.isfinite(row_squares).all()):  # finite sums: every entry is finite, no copy
        finite = torch.isfinite(x).all(dim=1)  # a diverged run's NaN rows say nothing about the geometry
        x, row_squares = x[finite], row_squares[finite]
    if x.shape[0] < 2:
        nan = float("nan")
        return {"effective_rank": nan, "width": float(features.shape[1]), "feature_rms": nan, "spread": nan}
    second_moment = row_squares.mean()
    centred = x - x.mean(dim=0, keepdim=True)  # shared with the effective rank
    variance = centred.square().sum(dim=1).mean()
    spread = variance / second_moment if second_moment > 0 else torch.zeros(())
    return {
        "effective_rank": float(_centred_effective_rank(centred)), "width": float(x.shape[1]),
        "feature_rms": float(second_moment.div(x.shape[1]).sqrt()), "spread": float(spread),
    }


def penultimate_module(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The classifier head: ``model.head`` when it exists, else the last ``nn.Linear``.

    Its input is the penultimate representation (``model.embed(x)`` for trainground's
    models), captured with a forward pre-hook so no extra forward pass is needed.
    """
    named = dict(model.named_modules())
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        for name, module in named.items():
            if module is head:
                return name, head
    linears = [(name, m) for name, m in named.items() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


class RepresentationMonitor(Monitor):
    """Collects penultimate features of sampled batches and measures their effective rank.

    Args:
        model: the network; the input of its head (see :func:`penultimate_module`) is watched.
        max_rows: rows kept per window (newest first out); the SVD at compute costs O(rows * width^2).
        rows_per_batch: rows kept from each sampled batch, so the window spans many batches.
    """

    def __init__(self, model: nn.Module, *, max_rows: int = 1024, rows_per_batch: int = 64) -> None:
        found = penultimate_module(model)
        self.name, self.module = found if found is not None else ("", None)
        self.num_classes = int(getattr(self.module, "out_features", 0) or 0)
        self.max_rows, self.rows_per_batch = max_rows, rows_per_batch
        self._chunks: list[Tensor] = []
        self._rows = 0
        self._handle: Any = None

    def arm(self) -> None:
        if self.module is None or self._handle is not None:
            return
        self._handle = self.module.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0]
        if not isinstance(x, Tensor) or x.ndim < 2:
            return
        chunk = x.detach().reshape(x.shape[0], -1)[: self.rows_per_batch].clone()
        self._chunks.append(chunk)
        self._rows += chunk.shape[0]
        while self._rows - self._chunks[0].shape[0] >= self.max_rows:
            self._rows -= self._chunks.pop(0).shape[0]

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def rows(self) -> int:
        """Rows collected in the current window."""
        return self._rows

    @property
    def full(self) -> bool:
        """Whether the window holds ``max_rows`` rows (time to compute it)."""
        return self._rows >= self.max_rows

    def update(self, features: Tensor) -> None:
        """Add features directly (for a loop without hooks)."""
        self._hook(self.module, (features,))

    def compute_window(self, step: int, epoch: int) -> pd.DataFrame:
        """Statistics of the collected rows at ``step`` (empty when nothing was collected)."""
        if not self._chunks:
            return empty_table()
        stats = representation_stats(torch.cat(self._chunks)[-self.max_rows :])
        stats["num_classes"] = float(self.num_classes)
        stats["rows"] = float(min(self._rows, self.max_rows))
        return long_table([step], [epoch], [self.name or "penultimate"],
                          {k: np.array([[v]]) for k, v in stats.items()})

    def compute(self) -> pd.DataFrame:
        return self.compute_window(-1, -1)

    def reset(self) -> None:
        self._chunks, self._rows = [], 0

    def state_dict(self) -> dict[str, Any]:
        return {"chunks": [c.cpu() for c in self._chunks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._chunks = list(state.get("chunks", []))
        self._rows = sum(c.shape[0] for c in self._chunks)
