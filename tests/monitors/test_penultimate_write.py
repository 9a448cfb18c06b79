"""The cheaper per-step paths write exactly what the plain tensor operations would.

``PenultimateFeatures.write`` copies rows through numpy on a CPU (torch's row-wise
``index_put`` is ~3x slower there); ``host_norm`` reads the per-tensor norms one by one
instead of stacking them. Both must give the same bits as the operations they replace.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainground.gradients.context import host_norm
from trainground.monitors.penultimate import PenultimateFeatures


def _reference_write(table: torch.Tensor, stamp: torch.Tensor, positions: torch.Tensor, x: torch.Tensor,
                     epoch: int) -> None:
    table[positions] = x.float()
    stamp[positions] = epoch


def test_cpu_feature_writes_match_index_put():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    features = PenultimateFeatures(model, 40)
    table, stamp = torch.zeros(40, 7), torch.full((40,), -1, dtype=torch.long)
    for epoch in range(3):
        features.epoch = epoch
        order = torch.randperm(40)
        for chunk in (order[:16], order[16:30], order[30:]):
            x = torch.randn(7, len(chunk)).T  # a non-contiguous batch of rows
            features.write(chunk, x)
            _reference_write(table, stamp, chunk, x, epoch)
    assert torch.equal(features.table, table) and torch.equal(features.stamp, stamp)
    half = torch.randn(3, 7, dtype=torch.float16)  # other dtypes take torch's path, converted
    features.write(torch.tensor([0, 5, 9]), half)
    _reference_write(table, stamp, torch.tensor([0, 5, 9]), half, 2)
    assert torch.equal(features.table, table)


def test_feature_write_skips_a_batch_of_another_shape():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    features = PenultimateFeatures(model, 10)
    features.write(torch.tensor([1, 2]), torch.ones(3, 7))
    assert features.table is None


def test_host_norm_is_the_stacked_norms_sum():
    torch.manual_seed(1)
    grads = [torch.randn(64, 256), torch.randn(256), torch.randn(10, 256) * 1e-3, torch.randn(10) * 1e3]
    expected = math.sqrt(sum(v * v for v in torch.stack(torch._foreach_norm(grads)).tolist()))
    assert host_norm(grads) == expected
    assert host_norm([]) == 0.0
