"""Class probabilities of each sample from one run: the early-learning average blended with
its neighbours' labels in the learned representation, and that representation itself."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from trainground.diagnosis.confident_learning import CHUNK_ROWS, prune_by_noise_rate
from trainground.diagnosis.neighbor_cache import NeighborCache
from trainground.diagnosis.neighbors import neighbor_label_probs
from trainground.monitors.representation import penultimate_module

# Neighbours consulted in the learned space: the usual k of k-NN label cleaning; the
# smoothed vote leaves every class some probability, so small classes are not silenced.
NEIGHBORS = 10


def label_issue_probs(
    labels: np.ndarray, early_probs: np.ndarray, embeddings: np.ndarray | None, *, k: int = NEIGHBORS,
    cache: NeighborCache | None = None,
) -> np.ndarray:
    """Class probabilities of each sample from the two views one run offers.

    The early-learning average (what the model predicted before it memorised) and the
    labels of the sample's neighbours in the learned representation (cosine distance)
    are independent views of the true class; their equal-weight average is the estimate,
    so neither view's blind spot (a hard sample for the model, a mixed neighbourhood)
    decides alone. Without embeddings the early-learning average is used alone. With
    ``cache`` the neighbour search of these same ``embeddings`` is run once per diagnosis
    (the trust decision before the second pass and the label check share it).

    References:
        Bahri, Jiang & Gupta, "Deep k-NN for Noisy Labels", ICML 2020.
    """
    if embeddings is None or len(labels) < 3:
        return early_probs
    cache = cache or NeighborCache()
    # float32 as the search computes (no float64 copy of an N x D array)
    _, _, neighbors = cache.search(
        "embeddings", embeddings, lambda: np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1), k,
        metric="cosine",
    )
    # By blocks of rows: the vote of a block is chunk x K, so the only N x K array made here
    # is the result (in the dtype of early_probs: float32 records stay float32).
    out = np.empty_like(early_probs)
    for lo in range(0, len(labels), CHUNK_ROWS):
        hi = lo + CHUNK_ROWS
        out[lo:hi] = 0.5 * early_probs[lo:hi] + 0.5 * neighbor_label_probs(neighbors[lo:hi], labels, early_probs.shape[1])
    return out


def trusted_samples(
    labels: np.ndarray, early_probs: np.ndarray, embeddings: np.ndarray | None, *, cache: NeighborCache | None = None,
) -> np.ndarray:
    """``[N]`` bool: the samples confident learning does not flag as label issues."""
    return ~prune_by_noise_rate(labels, label_issue_probs(labels, early_probs, embeddings, cache=cache))


def embed(model: nn.Module, features: Tensor, device: torch.device, *, chunk: int = 1024) -> np.ndarray | None:
    """Penultimate representation of every row of ``features``: ``model.embed`` when the model
    has it, else the input of its head (``model.head`` or the last ``nn.Linear``, read by a
    forward pre-hook during a plain forward); None when the model has neither."""
    found = None if hasattr(model, "embed") else penultimate_module(model)
    if found is None and not hasattr(model, "embed"):
        return None
    seen: list[Tensor] = []
    handle = None if found is None else found[1].register_forward_pre_hook(
        lambda module, inputs: seen.append(inputs[0].detach().reshape(inputs[0].shape[0], -1)))
    try:
        with torch.no_grad():
            chunks = []
            for part in features.split(chunk):
                if found is None:
                    chunks.append(model.embed(part.to(device)).float().cpu())  # type: ignore[operator]
                    continue
                seen.clear()
                model(part.to(device))
                if len(seen) != 1 or seen[0].shape[0] != len(part):
                    return None  # the head ran more than once, or on another shape: no clear representation
                chunks.append(seen[0].float().cpu())
    finally:
        if handle is not None:
            handle.remove()
    return torch.cat(chunks).reshape(len(features), -1).numpy()
