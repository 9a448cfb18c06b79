"""Tune a run: the learning-rate range test and the hyper-parameter search (Optuna)."""

from trainground.tune.lr_find import LR_FIND_FILE, LRFindRun, lr_find

__all__ = ["LR_FIND_FILE", "LRFindRun", "lr_find"]
