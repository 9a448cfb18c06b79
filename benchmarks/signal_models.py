"""The cleanlab anchors' training loop with a built-in signal model in place of the MLP.

Shared by ``label_errors.py --model cnn1d`` (benchmark A) and ``repair_accuracy.py --model cnn1d``
(benchmark B), so that the anchor side of both benchmarks trains the same architecture as
trainground (``ModelConfig(name=...)``) with the anchors' own loop: Adam 1e-3, batch 64,
``torch.manual_seed(seed)`` before building, batches from a ``randperm`` seeded by the seed,
and, with ``sample_weight``, the anchors' weighted mean of the per-sample cross-entropy
(``common.train_mlp``). ``TorchSignalClassifier`` is the scikit-learn wrapper CleanLearning
needs (it clones it and passes ``sample_weight``), like the anchors' ``TorchMLPClassifier``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold

from trainground.models import ModelConfig, build_model

NUM_CLASSES = 10
CV_FOLDS = 5  # the anchors' (bench_a / bench_b) fold count


def train_signal_model(x: np.ndarray, y: np.ndarray, seed: int, model: str, epochs: int,
                       sample_weight: np.ndarray | None = None) -> torch.nn.Module:
    """The anchors' ``train_mlp`` loop with a built-in signal model in place of the MLP."""
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y)).long()
    wt = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32)
    net = build_model(ModelConfig(name=model), input_shape=(x.shape[1],), num_classes=NUM_CLASSES, train_features=xt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for b in torch.randperm(len(yt), generator=gen).split(64):
            if wt is None:
                loss = torch.nn.functional.cross_entropy(net(xt[b]), yt[b])
            else:
                w = wt[b]
                loss = (torch.nn.functional.cross_entropy(net(xt[b]), yt[b], reduction="none") * w).sum() / w.sum().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def predict_proba(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return torch.softmax(net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))), dim=1).double().numpy()


def accuracy(net: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict_proba(net, x).argmax(1) == y).mean())


class TorchSignalClassifier(ClassifierMixin, BaseEstimator):
    """scikit-learn wrapper around :func:`train_signal_model` (for cleanlab's ``CleanLearning``).

    Every ``fit`` re-seeds with ``seed`` (each fold and the final model start from the same
    initialisation seed; the data differ), as the anchors' ``TorchMLPClassifier`` does."""

    def __init__(self, seed: int = 0, model: str = "cnn1d", epochs: int = 20):
        self.seed = seed
        self.model = model
        self.epochs = epochs

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.arange(NUM_CLASSES)
        self.model_ = train_signal_model(np.asarray(X, dtype=np.float32), np.asarray(y), self.seed, self.model,
                                         self.epochs, sample_weight)
        return self

    def predict_proba(self, X):
        return predict_proba(self.model_, np.asarray(X, dtype=np.float32))

    def predict(self, X):
        return self.predict_proba(X).argmax(1)


def cv_pred_probs(x: np.ndarray, y_noisy: np.ndarray, seed: int, model: str, epochs: int) -> np.ndarray:
    """Out-of-sample probabilities by the anchors' 5-fold CV (the folds of ``bench_a.cv_pred_probs``
    and of CleanLearning's own CV: ``StratifiedKFold(5, shuffle=True, random_state=seed)``)."""
    pp = np.zeros((len(y_noisy), NUM_CLASSES))
    for tr, ho in StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed).split(y_noisy, y_noisy):
        pp[ho] = predict_proba(train_signal_model(x[tr], y_noisy[tr], seed, model, epochs), x[ho])
    return pp


def clean_learning(x: np.ndarray, y_noisy: np.ndarray, xte: np.ndarray, yte: np.ndarray, truth: np.ndarray,
                   seed: int, pp: np.ndarray, model: str, epochs: int) -> dict:
    """The anchors' ``bench_b.clean_learning`` (CleanLearning defaults, the CV probabilities passed in)
    with :class:`TorchSignalClassifier` as the classifier."""
    from cleanlab.classification import CleanLearning

    cl = CleanLearning(clf=TorchSignalClassifier(seed=seed, model=model, epochs=epochs), seed=seed,
                       cv_n_folds=CV_FOLDS, find_label_issues_kwargs={"n_jobs": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl.fit(x, y_noisy, pred_probs=pp)
    issues = cl.get_label_issues()
    mask = issues["is_label_issue"].to_numpy()
    tp = int(np.sum(mask & truth))
    return {
        "test_acc": float((cl.predict(xte) == yte).mean()),
        "n_removed": int(mask.sum()),
        "removed_precision": tp / max(int(mask.sum()), 1),
        "removed_recall": tp / max(int(truth.sum()), 1),
        "used_sample_weights": bool("sample_weight" in issues.columns),
    }
