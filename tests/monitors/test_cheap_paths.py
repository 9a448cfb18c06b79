"""The cheaper per-step paths write exactly what the plain tensor operations would.

``PenultimateFeatures.write`` copies rows through numpy on a CPU (torch's row-wise
``index_put`` is ~3x slower there); ``host_norm`` reads the per-tensor norms one by one
instead of stacking them; the loss history turns a chunk of CPU Guard floats into one
tensor. Each must give the same bits as the operations it replaces.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainground.gradients.context import host_norm
from trainground.monitors.history import _stack_rows
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


def test_history_chunk_of_guard_floats_matches_row_by_row():
    torch.manual_seed(2)
    rows = [(torch.randn(()), (float(torch.randn(())), float("nan") if i % 5 == 0 else 1e30 * i, 1.0 / 3))
            for i in range(40)]
    fast = _stack_rows(rows)  # every row from the CPU Guard: one tensor
    slow = _stack_rows([*rows, (torch.zeros(()), None)])[:-1]  # one row without a Guard: row by row
    assert fast.dtype == slow.dtype == torch.float32
    assert torch.equal(fast.isnan(), slow.isnan())
    assert torch.equal(fast.nan_to_num(7.0), slow.nan_to_num(7.0))


def _reference_features(plan, n: int, width: int):
    """One table written as the rows come, cloned at each snapshot: what the views must give."""
    table, stamp = torch.zeros(n, width), torch.full((n,), -1, dtype=torch.long)
    best = None
    for epoch, writes, snap in plan:
        for positions, x in writes:
            _reference_write(table, stamp, positions, x, epoch)
        if snap:
            best = (table.clone(), stamp.clone())
        yield table.clone(), stamp.clone(), best


def test_feature_views_equal_a_table_written_as_the_rows_come():
    # Epochs that see every sample (the older writes are dropped), epochs that see part of them
    # (older rows must show through), a row written twice in one epoch (the last write wins),
    # irregular snapshots, a read in the middle (the view is built), a checkpoint round trip.
    torch.manual_seed(2)
    n, width = 30, 7
    model = nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Linear(width, 3))
    plan = []
    for epoch in range(12):
        seen = torch.randperm(n) if epoch % 3 == 0 else torch.randperm(n)[: 8 + epoch]
        chunks = [seen[: len(seen) // 2], seen[len(seen) // 2:], seen[:3]]
        plan.append((epoch, [(c, torch.randn(len(c), width)) for c in chunks], epoch in (1, 2, 4, 5, 9)))
    features = PenultimateFeatures(model, n)
    for (epoch, writes, snap), (table, stamp, best) in zip(plan, _reference_features(plan, n, width), strict=True):
        features.epoch = epoch
        for positions, x in writes:
            features.write(positions, x)
        if snap:
            features.snapshot()
        assert features._cur.count <= 2 * n  # what is held by reference stays bounded
        if epoch == 6:
            assert torch.equal(features.table, table)  # built in the middle of the run
        if epoch == 7:  # a checkpoint round trip
            restored = PenultimateFeatures(model, n)
            restored.load_state_dict(features.state_dict())
            features = restored
        chosen, chosen_stamp = features.chosen()
        assert torch.equal(chosen, table if best is None else best[0])
        assert torch.equal(chosen_stamp, stamp if best is None else best[1])
        assert torch.equal(features.stamp, stamp)
    assert torch.equal(features.table, table)
    assert features.table.data_ptr() != features.best.data_ptr()  # the snapshot is its own table


def test_full_epochs_copy_no_row_until_read():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    features = PenultimateFeatures(model, 10)
    for epoch in range(5):
        features.epoch = epoch
        features.write(torch.arange(10), torch.full((10, 4), float(epoch)))
        features.snapshot()
    assert features._cur.base is None and len(features._cur.writes) == 2  # two epochs held, nothing built
    assert torch.equal(features.best, torch.full((10, 4), 4.0))


def test_an_epoch_filed_at_once_equals_batch_by_batch():
    # write_many (a session's flush: one stamp write for all batches) against write per batch,
    # over full and partial epochs, a repeated row, snapshots and the 2 * N bound being crossed.
    torch.manual_seed(3)
    n, width = 24, 5
    model = nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Linear(width, 3))
    one, many = PenultimateFeatures(model, n), PenultimateFeatures(model, n)
    for epoch in range(9):
        seen = torch.randperm(n) if epoch % 2 == 0 else torch.randperm(n)[: 5 + epoch]
        batches = [(c, torch.randn(len(c), width)) for c in (seen[:7], seen[7:], seen[:2])]
        if epoch == 5:
            batches = batches * 3  # more rows than 2 * N in one filing: the view is built
        one.epoch = many.epoch = epoch
        for positions, x in batches:
            one.write(positions, x)
        many.write_many(batches)
        if epoch in (1, 4, 6):
            one.snapshot()
            many.snapshot()
        assert torch.equal(one.stamp, many.stamp)
        assert torch.equal(one.chosen()[0], many.chosen()[0]) and torch.equal(one.chosen()[1], many.chosen()[1])
    assert torch.equal(one.table, many.table) and torch.equal(one.best, many.best)
