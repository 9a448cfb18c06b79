"""How long a session keeps its records buffered changes nothing it records.

The session keeps each batch's logits, labels, index and features as references and moves
them into the per-sample tables in batched copies (``SessionConfig.flush_rows``); the recorder
computes the per-sample statistics once per full chunk and, at epoch ends, only adds the
probabilities the early-learning window reads (``SampleRecorder.add_probs``). The most eager
setting (a flush after every batch, a recorder chunk of 50 rows, so chunks end inside batches
and epochs) and the defaults must give the same records, sums, features, table and findings,
bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainground.integrations import SessionConfig, Watch
from trainground.monitors import SampleRecorder


def _run(digits, tmp_path, *, eager: bool):
    x, y = digits.features[:700] / 16.0, digits.labels[:700].clone()
    y[torch.arange(0, 600, 7)] = (y[torch.arange(0, 600, 7)] + 3) % 10  # some wrong labels to find
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    config = SessionConfig(flush_rows=1 if eager else SessionConfig().flush_rows, report=False)
    watch = Watch(model, optimizer, TensorDataset(x[:600], y[:600]), TensorDataset(x[600:], y[600:]),
                  run_dir=tmp_path / ("eager" if eager else "lazy"), config=config)
    recorder = watch.session.recorder
    if eager:
        recorder.chunk_rows = 50  # before the first update allocates the buffers
    syncs = []
    sync = recorder.sync
    recorder.sync = lambda: (syncs.append(recorder._fill), sync())[1]  # type: ignore[method-assign]
    loader = DataLoader(watch.train_data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        for index, xb, yb in loader:
            logits = model(xb)
            watch.backward(F.cross_entropy(logits, yb), index=index, logits=logits, labels=yb)
            watch.step()
        with torch.no_grad():
            for index, xb, yb in DataLoader(watch.val_data, batch_size=64):
                watch.record_val(index, model(xb), yb)
        watch.end_epoch()
    session = watch.session
    result = watch.finish()
    records = pd.read_parquet(tmp_path / ("eager" if eager else "lazy") / "samples.parquet")
    session.syncs = [n for n in syncs if n]  # chunks whose statistics were computed
    return session, result, records.sort_values(["epoch", "split", "index"], kind="stable").reset_index(drop=True)


def test_buffered_and_eager_sessions_record_the_same(digits, tmp_path):
    eager, eager_result, eager_records = _run(digits, tmp_path, eager=True)
    lazy, lazy_result, lazy_records = _run(digits, tmp_path, eager=False)
    assert len(eager.syncs) >= 5 * 700 // 50 and len(lazy.syncs) == 1  # the two really buffered differently
    assert len(lazy_records) == 5 * 700
    pd.testing.assert_frame_equal(eager_records, lazy_records, check_exact=True)
    assert torch.equal(eager.window.prob_sum, lazy.window.prob_sum)
    assert torch.equal(eager.window.prob_count, lazy.window.prob_count)
    assert np.array_equal(eager.features.features(), lazy.features.features())
    # Without the loop's losses the validation loss is a float32 cross-entropy sum over the rows
    # flushed together, so a flush per batch rounds it differently (1e-7): equal up to that.
    for a, b in zip(eager.state.history, lazy.state.history, strict=True):
        assert a == pytest.approx(b, rel=1e-6)
        assert {k: v for k, v in a.items() if k != "val_loss"} == {k: v for k, v in b.items() if k != "val_loss"}
    pd.testing.assert_frame_equal(eager_result.table, lazy_result.table, check_exact=True)
    assert [(f.check, f.subject, f.severity) for f in eager_result.findings] == \
        [(f.check, f.subject, f.severity) for f in lazy_result.findings]


def test_add_probs_counts_each_row_once():
    recorder = SampleRecorder(np.arange(6), 3, chunk_rows=4)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    recorder.update(torch.tensor([0, 1, 2]), logits, torch.tensor([0, 1, 2]))
    recorder.add_probs()
    recorder.add_probs()  # nothing new: no double count
    assert recorder.prob_count.tolist() == [1, 1, 1, 0, 0, 0]
    recorder.update(torch.tensor([3, 4, 5]), logits, torch.tensor([0, 1, 2]))  # spans the chunk end: a sync
    table = recorder.compute()
    assert recorder.prob_count.tolist() == [1] * 6
    assert torch.allclose(recorder.prob_sum[:3], torch.softmax(logits, dim=1))
    assert torch.allclose(recorder.prob_sum[3:], torch.softmax(logits, dim=1))
    assert sorted(table["index"].tolist()) == list(range(6))
