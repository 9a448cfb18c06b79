"""The optional second pass: train again on the samples the first pass trusts, holding the
flagged ones out, so their probabilities are genuinely out-of-sample."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from torch import nn

from trainground.data import IndexedDataset, stratified_split
from trainground.diagnosis.early_learning import EarlyLearningWindow
from trainground.diagnosis.label_probs import embed
from trainground.engine import FitConfig, fit
from trainground.engine.sample_recording import RecordSamples
from trainground.gradients import GuardConfig
from trainground.monitors.samples import SampleRecorder


@dataclass
class SecondPass:
    """What the second pass gives the sample checks, and what it cost.

    Attributes:
        pred_probs: ``[N, K]`` early-learning average of every sample of ``data`` (held-out
            samples' rows come from eval passes).
        embeddings: ``[N, D]`` representation of the second pass's best model, or None.
        sample_presentations: training samples x epochs of this pass.
    """

    pred_probs: np.ndarray
    embeddings: np.ndarray | None
    sample_presentations: int


def second_pass(
    data: IndexedDataset, trusted: np.ndarray, initial: nn.Module, *, fit_config: FitConfig,
    patience: int | None, guard: GuardConfig | None = None, loss_fn: nn.Module | None = None,
) -> SecondPass:
    """Train again, from ``initial`` weights, on the samples the first pass trusts.

    The model then learns from cleaner labels, and the samples flagged by the first pass
    are held out: their probabilities come from eval passes at each epoch end (the idea
    of iterative noisy cross-validation, here with one split chosen by the data instead
    of K folds). Costs one more early-stopped training on most of the data.

    Args:
        data: every sample to diagnose.
        trusted: ``[N]`` bool, the samples to train on (see ``label_probs.trusted_samples``).
        initial: the first pass's initial model (copied, not changed).
        fit_config: the training options of the first pass (its ``val_fraction`` splits the
            trusted samples).
        patience: early-stopping patience of the early-learning window.
        guard, loss_fn: as in the first pass.

    References:
        Chen et al., "Understanding and Utilizing Deep Neural Networks Trained with Noisy
        Labels", ICML 2019 (INCV).
    """
    positions = np.flatnonzero(trusted)
    fit_pos, val_pos = stratified_split(
        data.labels.numpy()[positions], fraction=fit_config.val_fraction, seed=fit_config.seed,
    )
    train, val = data.subset(positions[fit_pos]), data.subset(positions[val_pos])
    heldout = data.subset(np.sort(np.concatenate([positions[val_pos], np.flatnonzero(~trusted)])))
    recorder = SampleRecorder(data.index, data.num_classes, keep_records=False)  # only the probability sums are read
    window = EarlyLearningWindow(recorder, patience=patience)
    model = copy.deepcopy(initial)
    result = fit(
        model, train, val_data=val, config=fit_config, callbacks=[RecordSamples(recorder, val_data=heldout), window],
        guard=guard, loss_fn=loss_fn,
    )
    device = next(result.model.parameters()).device
    return SecondPass(
        pred_probs=window.mean_probs(),
        embeddings=embed(window.model_at_best(result.model), data.features, device),
        sample_presentations=len(train) * len(result.history),
    )
