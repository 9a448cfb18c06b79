"""The early-learning window: what the model predicted for each sample before it memorised.

Networks trained on noisy labels first fit the patterns shared by most samples and only
later memorise the exceptions (the wrong labels). Two consequences make one run enough:
the predictions a sample receives during the early epochs behave like held-out
predictions, and the validation loss measured on the (equally noisy) validation labels
stops falling when memorisation starts. :class:`EarlyLearningWindow` therefore keeps, at
the epoch of lowest validation loss, a copy of every sample's running sum of softmax
vectors (from the :class:`~trainground.monitors.samples.SampleRecorder`) and of the model
weights; the diagnosis reads the average prediction over that window and the
representation of that model. No constant of the window depends on the data set: its end
is where the data say memorisation begins.

References:
    Arpit et al., "A Closer Look at Memorization in Deep Networks", ICML 2017.
    Liu et al., "Early-Learning Regularization Prevents Memorization of Noisy Labels",
    NeurIPS 2020.
    Swayamdipta et al., "Dataset Cartography", EMNLP 2020 (confidence over epochs).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from trainground.engine.callbacks import Callback
from trainground.engine.state import TrainState
from trainground.monitors.samples import SampleRecorder


class EarlyLearningWindow(Callback):
    """Remembers the recorder's probability sums and the weights at the best validation loss.

    Without a validation loss (no validation split) the window is the whole run, which
    includes memorisation and finds far fewer label errors: give the run a validation split.

    With ``patience``, it ends training (``state.stop_requested``) once the validation loss
    has not improved for that many epochs: what follows is memorisation, which the
    diagnosis does not use (early stopping on the noisy validation loss, which also leaves
    a better model than training on).

    Args:
        recorder: a ``SampleRecorder`` created with ``track_probs=True``, fed by ``RecordSamples``.
        patience: epochs without a new best validation loss before training stops; None
            trains for all the configured epochs.
    """

    def __init__(self, recorder: SampleRecorder, *, patience: int | None = None) -> None:
        if not recorder.track_probs:
            raise ValueError("EarlyLearningWindow needs a SampleRecorder with track_probs=True")
        self.recorder = recorder
        self.patience = patience
        self.best_loss = float("inf")
        self.best_epoch: int | None = None
        self._prob_sum: torch.Tensor | None = None
        self._prob_count: torch.Tensor | None = None
        self._requested = False  # a snapshot of the recorder's sums is asked for, not yet taken
        self.weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        loss = state.epoch_metrics.get("val_loss")
        # A NaN validation loss never improves; with no validation split every epoch "improves".
        if loss is None or loss < self.best_loss:
            # The sums must include this epoch's rows: the recorder copies them once it has
            # counted those rows (when it next syncs, or when the sums are read), not per epoch.
            self.recorder.request_snapshot()
            self._requested = True
            self._prob_sum = self._prob_count = None
            self.best_loss = float("inf") if loss is None else float(loss)
            self.best_epoch = state.epoch
            self.weights = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
        elif self.patience is not None and self.best_epoch is not None and state.epoch - self.best_epoch >= self.patience:
            state.stop_requested = True

    def _take_snapshot(self) -> None:
        if self._requested:
            self.recorder.add_probs()
            if self.recorder.snapshot is None:
                raise RuntimeError("the early-learning window's epoch recorded no sample")
            (self._prob_sum, self._prob_count), self.recorder.snapshot = self.recorder.snapshot, None
            self._requested = False

    @property
    def prob_sum(self) -> torch.Tensor | None:
        """``[N, K]`` sums of every sample's softmax vectors up to the window's last epoch."""
        self._take_snapshot()
        return self._prob_sum

    @prob_sum.setter
    def prob_sum(self, value: torch.Tensor | None) -> None:
        self._take_snapshot()
        self._prob_sum = value

    @property
    def prob_count(self) -> torch.Tensor | None:
        """``[N]`` times each sample was seen up to the window's last epoch."""
        self._take_snapshot()
        return self._prob_count

    @prob_count.setter
    def prob_count(self, value: torch.Tensor | None) -> None:
        self._take_snapshot()
        self._prob_count = value

    def mean_probs(self) -> np.ndarray:
        """``[N, K]`` average prediction of each sample over the window (recorder index order)."""
        if self.prob_sum is None:
            raise RuntimeError("no epoch has finished yet")
        return self.recorder.mean_probs(self.prob_sum, self.prob_count)

    def model_at_best(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` with the weights of the window's last epoch."""
        best = copy.deepcopy(model)
        if self.weights is not None:
            best.load_state_dict(self.weights)
        return best.eval()

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss, "best_epoch": self.best_epoch, "prob_sum": _cpu(self.prob_sum),
            "prob_count": _cpu(self.prob_count), "weights": self.weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.recorder.prob_sum.device if self.recorder.prob_sum is not None else torch.device("cpu")
        self.best_loss, self.best_epoch = float(state["best_loss"]), state["best_epoch"]
        self._requested = False
        self._prob_sum = None if state["prob_sum"] is None else state["prob_sum"].to(device)
        self._prob_count = None if state["prob_count"] is None else state["prob_count"].to(device)
        self.weights = state["weights"]


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()
