"""What ``fit`` (and other loops) settle before the first step: device, optimizer, split, data identity."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from trainground.data.split import stratified_split
from trainground.data.tasks import tasks_of
from trainground.engine.batches import BatchSource
from trainground.engine.config import FitConfig
from trainground.errors import ConfigError


def make_optimizer(config: FitConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ConfigError(f"unknown optimizer {config.optimizer!r}; known: adam, adamw, sgd")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA device is available; use device: auto or cpu")
    return torch.device(name)


def fingerprint(source: BatchSource) -> str:
    # Labels and indices identify the data cheaply; a resume on other data must fail loudly.
    digest = hashlib.sha1(str(len(source)).encode())
    labels = source.labels()
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).tobytes())
    index = getattr(source.dataset, "index", None)
    if index is not None:
        digest.update(np.ascontiguousarray(np.asarray(index)).tobytes())
    targets = getattr(source.dataset, "targets", None)
    if isinstance(targets, dict):  # a multi-target dataset: every task's targets identify it
        for name, values in targets.items():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(np.asarray(values)).tobytes())
    return digest.hexdigest()


def split_data(data: Dataset, val_data: Dataset | None, config: FitConfig) -> tuple[BatchSource, BatchSource | None]:
    if val_data is not None:
        return BatchSource(data), BatchSource(val_data)
    if config.val_fraction <= 0:
        return BatchSource(data), None
    labels = BatchSource(data).labels()
    if labels is None:  # a plain Dataset: no labels to stratify on without reading every item
        rng = np.random.default_rng(config.seed)
        perm = rng.permutation(len(data))  # type: ignore[arg-type]
        n_val = round(config.val_fraction * len(perm))
        train_pos, val_pos = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    else:
        train_pos, val_pos = stratified_split(labels, fraction=config.val_fraction, seed=config.seed)
    return BatchSource(data, train_pos), BatchSource(data, val_pos)


def input_index(source: BatchSource | None) -> np.ndarray:
    if source is None:
        return np.empty(0, dtype=np.int64)
    index = getattr(source.dataset, "index", None)
    positions = np.arange(len(source.dataset)) if source.positions is None else source.positions.numpy()  # type: ignore[arg-type]
    return positions if index is None else np.asarray(index)[positions]


def model_info(data: Dataset) -> dict[str, Any]:
    info: dict[str, Any] = {}
    encoder = getattr(data, "encoder", None)
    if encoder is not None:
        info["classes"] = encoder.to_json()
    schema = getattr(data, "schema", None)
    if schema is not None and hasattr(schema, "to_json"):
        info["data_schema"] = schema.to_json()
    tasks = tasks_of(data)
    if tasks is not None:
        info["tasks"] = [t.to_json() for t in tasks]
    return info
