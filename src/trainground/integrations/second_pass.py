"""The optional second pass of a watched training: one more early-stopped training of a fresh
copy of your model on the samples the first pass trusts (``diagnosis.second_pass``).

One recorded run gives the label issues; when you can afford one more training, the
second pass makes them better (on asymmetric noise most: the model learns from cleaner
labels and the flagged samples get out-of-sample probabilities). It is what
``trainground diagnose`` runs by default. Ask for it at the end of the run::

    result = watch.finish(second_pass=SecondPass(model=make_model(), fit=FitConfig(lr=1e-3, epochs=40)))
    trainer = pl.Trainer(callbacks=[TraingroundCallback("runs/mine", second_pass=SecondPass(model=make_model()))])

``model`` is a fresh model at its initial weights (ideally the same initial weights as the
first run; it is copied, not changed) whose ``forward`` takes a batch of inputs and returns
logits. The retraining is trainground's own loop (``engine.fit``: ``fit``'s optimizer,
learning rate, batch size, epochs, device, seed and validation fraction of the trusted
samples), on every sample's input stacked into one tensor: it needs the inputs to be
tensors of one shape that fit in memory (tables, small images). Under DDP it runs on
rank 0 only. The transformers callback does not offer it (token batches are dicts the
built-in loop does not feed to a model).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis.label_probs import embed, trusted_samples
from trainground.diagnosis.second_pass import second_pass
from trainground.engine import FitConfig
from trainground.errors import ConfigError
from trainground.gradients import GuardConfig


@dataclass
class SecondPass:
    """Options of the second pass (see the module docstring)."""

    # A fresh model at its initial weights (copied, not changed); forward(inputs) -> logits.
    model: nn.Module
    # Training options of the retraining (optimizer, lr, batch size, at most ``epochs``, device,
    # seed; ``val_fraction`` of the trusted samples marks the early-learning window).
    fit: FitConfig = field(default_factory=FitConfig)
    # The Guard's options of the retraining (``GuardConfig()`` when None).
    guard: GuardConfig | None = None
    # The training loss (cross-entropy when None).
    loss_fn: nn.Module | None = None
    # ``[N, ...]`` every sample's input in session index order (training then validation);
    # default: stacked from the datasets the integration saw.
    inputs: Tensor | None = None


def stack_inputs(datasets: Iterable[Dataset], num_samples: int) -> Tensor:
    """``[num_samples, ...]`` inputs of datasets whose items are ``(index, x, y)`` (``WithIndex``)."""
    rows: dict[int, Tensor] = {}
    for dataset in datasets:
        for i in range(len(dataset)):  # type: ignore[arg-type]
            item = dataset[i]
            if not isinstance(item, tuple | list) or len(item) != 3 or not isinstance(item[1], Tensor):
                raise ConfigError("the second pass needs items (index, x, y) with tensor inputs x; "
                                  "pass SecondPass(inputs=...) for other data")
            rows[int(item[0])] = item[1]
    if not rows:
        raise ConfigError("the second pass found no samples to stack")
    first = next(iter(rows.values()))
    out = torch.zeros((num_samples, *first.shape), dtype=first.dtype)
    for index, x in rows.items():
        if x.shape != first.shape:
            raise ConfigError(f"the second pass needs inputs of one shape; sample {index} has "
                              f"{tuple(x.shape)}, another {tuple(first.shape)}")
        out[index] = x
    return out


def run_second_pass(
    options: SecondPass, inputs: Tensor, seen: np.ndarray, labels: np.ndarray, num_classes: int,
    pred_probs: np.ndarray, embeddings: np.ndarray | None, *, patience: int | None,
    weights: dict[str, Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The first pass's ``pred_probs``/``embeddings`` (rows = ``seen``) replaced by the second
    pass's, and the sample presentations it cost (0 when every sample is trusted or fewer than
    10 are: then the first pass's evidence stands, as in ``diagnose_dataset``).

    ``weights``: the first pass's model at its best epoch, as a state dict (maybe of a module
    around the network, such as a LightningModule).
    """
    # The trust is decided as ``diagnose`` decides it: with the representation of the first
    # pass's best model in eval mode when its weights fit ``options.model`` (the features
    # recorded during training otherwise).
    best = _best_network(options.model, weights)
    device = next(iter(options.model.parameters())).device
    first = None if best is None else embed(best.eval(), inputs[torch.from_numpy(seen)].float(), device)
    trusted = trusted_samples(labels, pred_probs, embeddings if first is None else first)
    if trusted.all() or trusted.sum() < 10:
        return pred_probs, embeddings, 0
    data = IndexedDataset(
        features=inputs[torch.from_numpy(seen)].float(), labels=torch.from_numpy(labels).long(),
        index=torch.from_numpy(seen), encoder=LabelEncoder(tuple(range(num_classes))),
        kind="table" if inputs.ndim == 2 else "image", name="second pass",
    )
    extra = second_pass(data, trusted, options.model, fit_config=options.fit, patience=patience,
                        guard=options.guard, loss_fn=options.loss_fn)
    return extra.pred_probs, (embeddings if extra.embeddings is None else extra.embeddings), \
        extra.sample_presentations


def _best_network(template: nn.Module, weights: dict[str, Tensor] | None) -> nn.Module | None:
    """A copy of ``template`` with ``weights`` (exact keys, or the same keys under one prefix,
    such as ``net.`` of a LightningModule holding the network); None when they do not fit."""
    if weights is None:
        return None
    keys = template.state_dict()
    for prefix in sorted({k[: len(k) - len(key)] for k in weights for key in keys if k.endswith(key)}, key=len):
        picked = {key: weights.get(prefix + key) for key in keys}
        if all(v is not None and v.shape == keys[key].shape for key, v in picked.items()):
            net = copy.deepcopy(template)
            net.load_state_dict(picked)
            return net
    return None

