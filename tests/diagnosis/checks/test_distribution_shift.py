"""distribution_shift: names the shifted features; silent on a random split."""

from __future__ import annotations

import numpy as np
import torch

from trainground.data import IndexedDataset, LabelEncoder, stratified_split
from trainground.diagnosis import Evidence, Severity, get_check


def _data(n: int = 600, seed: int = 0) -> IndexedDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return IndexedDataset(torch.from_numpy(x), torch.from_numpy(y), torch.arange(n), LabelEncoder.fit(y), "table", "toy")


def _split(data: IndexedDataset) -> tuple[IndexedDataset, IndexedDataset]:
    train_pos, val_pos = stratified_split(data.labels.numpy(), fraction=0.25, seed=0)
    return data.subset(train_pos), data.subset(val_pos)


def test_random_split_is_silent():
    for seed in range(3):
        train, val = _split(_data(seed=seed))
        findings = get_check("distribution_shift").fn(Evidence(train=train, val=val)).findings
        assert not [f for f in findings if f.severity >= Severity.WARNING]


def test_two_shifted_features_are_named():
    train, val = _split(_data())
    x = val.features.clone()
    x[:, [3, 6]] += 1.0
    shifted = IndexedDataset(x, val.labels, val.index, val.encoder, "table", "toy")
    (finding,) = get_check("distribution_shift").fn(Evidence(train=train, val=shifted)).findings
    assert finding.severity >= Severity.WARNING
    assert {t["feature"] for t in finding.evidence["top_features"][:2]} == {"x3", "x6"}
    assert finding.evidence["domain_auc"] > 0.6
