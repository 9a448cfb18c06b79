"""Helpers the training checks share: reading the layers table and the loss history."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from trainground.diagnosis.evidence import Evidence
from trainground.monitors.table import stat_matrix

# Three consecutive sampled steps: a condition seen once may be one odd batch; three in a
# row (30 steps at the default sampling) is a state of the run.
SUSTAIN = 3


def matrix(layers: pd.DataFrame, stat: str) -> pd.DataFrame:
    """``step x layer`` values of ``stat`` (empty frame when absent)."""
    if layers is None or layers.empty:
        return pd.DataFrame()
    return stat_matrix(layers, stat)


def weight_layers(layers: pd.DataFrame) -> list[str]:
    """Layers with a weight matrix or kernel (ndim >= 2), in model order: Linear, Conv, ...
    Norm layers and biases have their own scales and are left out of depth comparisons."""
    ndim = matrix(layers, "ndim")
    if ndim.empty:
        return []
    last = ndim.iloc[-1]
    return [c for c in ndim.columns if last[c] >= 2]


def trainable_weight_layers(layers: pd.DataFrame) -> list[str]:
    names = weight_layers(layers)
    trainable = matrix(layers, "trainable")
    if trainable.empty:
        return names
    return [n for n in names if trainable[n].iloc[-1] > 0]


def first_sustained(steps: np.ndarray, mask: np.ndarray, run: int = SUSTAIN) -> int | None:
    """First step that starts ``run`` consecutive True values of ``mask`` (None if none)."""
    count = 0
    for i, flag in enumerate(mask):
        count = count + 1 if flag else 0
        if count >= run:
            return int(steps[i - run + 1])
    return None


def onset_of_final_streak(steps: np.ndarray, mask: np.ndarray) -> int | None:
    """First step of the streak of True values that runs to the end (None if the last is False)."""
    if len(mask) == 0 or not mask[-1]:
        return None
    i = len(mask) - 1
    while i > 0 and mask[i - 1]:
        i -= 1
    return int(steps[i])


def finite_losses(steps: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Steps and losses with non-finite losses removed."""
    if steps is None or steps.empty or "loss" not in steps:
        return np.empty(0, dtype=np.int64), np.empty(0)
    loss = pd.to_numeric(steps["loss"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(loss)
    return steps["step"].to_numpy()[ok], loss[ok]


def initial_loss(steps: pd.DataFrame | None) -> float:
    """Where training started from: the loss of the first finite step, the only one measured on
    the initial weights.

    Every later step's loss comes after some learning. The median of the first 10 steps, read
    before, is a model that has already learnt on a small table at a usual learning rate: 10
    steps are a whole epoch of 160 rows at batch 16, and at lr 1e-2 the loss fell from 1.08 to
    0.2 within them (breast_cancer: 0.68 -> 0.08 in 3 steps). "Half of the starting loss" and
    "above where it started" were then read against a trained model. One batch of an untrained
    model is a fair estimate of its loss: its per-sample losses are all close to the chance
    level, so their mean varies little between batches.
    """
    _, loss = finite_losses(steps)
    return float(loss[0]) if loss.size else float("nan")


def block_means(steps: pd.DataFrame | None, blocks: int = 40, min_block: int = 10, *,
                with_noise: bool = False) -> tuple[np.ndarray, ...]:
    """Loss averaged over consecutive blocks of steps (about ``blocks`` of them, each at least
    ``min_block`` steps, so mini-batch noise is averaged down); returns block end steps and means,
    and with ``with_noise`` the expected |difference| of two block means from sampling alone,
    ``2 s / sqrt(pi m)`` per block (``s``: the spread of its ``m`` step losses)."""
    step, loss = finite_losses(steps)
    if loss.size < 2 * min_block:
        empty = (np.empty(0, dtype=np.int64), np.empty(0))
        return (*empty, np.empty(0)) if with_noise else empty
    size = max(min_block, loss.size // blocks)
    n = loss.size // size
    blocked = loss[: n * size].reshape(n, size)
    ends = step[size - 1 : n * size : size]
    if not with_noise:
        return ends, blocked.mean(axis=1)
    noise = 2.0 * blocked.std(axis=1, ddof=1) / np.sqrt(np.pi * size)
    return ends, blocked.mean(axis=1), noise


def fmt(x: float) -> str:
    return f"{x:.3g}"


def divergence_step(evidence: Evidence) -> int | None:
    """First step with a non-finite loss or gradient norm (None when the run stayed finite)."""
    candidates = []
    if evidence.steps is not None and not evidence.steps.empty and "loss" in evidence.steps:
        loss = pd.to_numeric(evidence.steps["loss"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(loss)
        if bad.any():
            candidates.append(int(evidence.steps["step"].to_numpy()[int(np.argmax(bad))]))
    grad = matrix(evidence.layers, "grad_norm")
    if not grad.empty:
        bad = ~np.isfinite(grad.to_numpy()).all(axis=1)
        if bad.any():
            candidates.append(int(grad.index[int(np.argmax(bad))]))
    return min(candidates) if candidates else None


def before_divergence(evidence: Evidence) -> Evidence:
    """The evidence up to (excluding) the first non-finite step. After a NaN every statistic is
    NaN or meaningless (NaN > 0 is False: every unit looks dead); the checks that report the
    divergence itself read the full evidence, the others read this."""
    step = divergence_step(evidence)
    if step is None:
        return evidence
    cut = {}
    for name in ("steps", "layers", "epochs"):
        frame = getattr(evidence, name)
        if frame is not None and "step" in frame:
            cut[name] = frame[frame["step"] < step].reset_index(drop=True)
    return dataclasses.replace(evidence, **cut)
