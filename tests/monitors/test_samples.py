"""The per-sample recorder: statistics against a reference, chunking, Parquet, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trainground.engine import FitConfig, fit
from trainground.engine.sample_recording import RecordSamples
from trainground.models import MLP
from trainground.monitors.samples import SampleRecorder, read_samples, sample_statistics


def reference(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Textbook per-sample formulas, one sample at a time."""
    out = {"loss": [], "margin": [], "prob_given": [], "predicted": []}
    for z, y in zip(logits.astype(np.float64), labels, strict=True):
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        out["loss"].append(-np.log(p[y]))
        out["margin"].append(z[y] - max(z[j] for j in range(len(z)) if j != y))
        out["prob_given"].append(p[y])
        out["predicted"].append(int(np.argmax(z)))
    return {k: np.asarray(v) for k, v in out.items()}


def test_statistics_match_the_textbook_formulas():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=gen) * 3
    labels = torch.randint(0, 7, (50,), generator=gen)
    loss, margin, prob, pred = sample_statistics(logits, labels)
    ref = reference(logits.numpy(), labels.numpy())
    np.testing.assert_allclose(loss.numpy(), ref["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(margin.numpy(), ref["margin"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prob.numpy(), ref["prob_given"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(pred.numpy(), ref["predicted"])
    assert ((margin > 0) == (pred == labels)).all()  # positive margin <=> the given label wins


@pytest.mark.parametrize("chunk_rows", [5, 7, 1000])
def test_records_every_batch_across_chunks_epochs_and_splits(chunk_rows):
    gen = torch.Generator().manual_seed(1)
    index = torch.arange(20) * 3 + 5  # input indices need not be positions
    recorder = SampleRecorder(index, 4, chunk_rows=chunk_rows)
    shown, prob_sums = [], {int(i): np.zeros(4) for i in index}
    for epoch in range(3):
        recorder.set_epoch(epoch)
        for rows in torch.randperm(20, generator=gen).split(6):
            logits, labels = torch.randn(len(rows), 4, generator=gen), torch.randint(0, 4, (len(rows),), generator=gen)
            split = "val" if epoch == 2 and rows[0] % 2 else "train"
            recorder.update(index[rows], logits, labels, split=split)
            ref = reference(logits.numpy(), labels.numpy())
            shown.append(pd.DataFrame({"index": index[rows].numpy(), "epoch": epoch, "split": int(split == "val"), **ref}))
            for i, p in zip(index[rows].tolist(), torch.softmax(logits, 1).numpy(), strict=True):
                prob_sums[i] += p
    got = recorder.compute()
    want = pd.concat(shown, ignore_index=True)
    assert list(got.columns) == ["index", "epoch", "split", "loss", "margin", "prob_given", "predicted"]
    assert len(got) == 60
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["epoch"], want["epoch"])
    np.testing.assert_array_equal(got["split"], want["split"])
    np.testing.assert_array_equal(got["predicted"], want["predicted"])
    for column in ("loss", "margin", "prob_given"):
        np.testing.assert_allclose(got[column], want[column], rtol=1e-5, atol=1e-6)
    expected_mean = np.stack([prob_sums[int(i)] / 3 for i in index])
    np.testing.assert_allclose(recorder.mean_probs(), expected_mean, rtol=1e-5)


def test_parquet_round_trip_equals_memory(tmp_path):
    gen = torch.Generator().manual_seed(2)
    index = torch.arange(30)
    on_disk = SampleRecorder(index, 3, path=tmp_path / "samples.parquet", chunk_rows=8)
    in_memory = SampleRecorder(index, 3)
    for epoch in range(2):
        for recorder in (on_disk, in_memory):
            recorder.set_epoch(epoch)
        for rows in index.split(9):
            logits, labels = torch.randn(len(rows), 3, generator=gen), torch.randint(0, 3, (len(rows),), generator=gen)
            on_disk.update(rows, logits, labels)
            in_memory.update(rows, logits, labels)
        on_disk.flush()
    on_disk.close()
    assert len(list((tmp_path / "samples.parquet").glob("part-*.parquet"))) == 2
    pd.testing.assert_frame_equal(read_samples(tmp_path / "samples.parquet"), in_memory.compute())
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "samples.parquet"), in_memory.compute(), check_dtype=False)


def _fit(digits, run_dir, epochs, resume=False):
    torch.manual_seed(0)
    data = digits.subset(np.arange(300))
    model = MLP(64, 10, hidden=(32,)).fit_input_stats(data.features)
    recorder = SampleRecorder(data.index, 10, path=run_dir / "samples.parquet")
    config = FitConfig(epochs=epochs, batch_size=64, val_fraction=0.2, device="cpu", keep_checkpoints=5,
                       checkpoint_seconds=0.0)  # a checkpoint at every epoch end
    fit(model, data, config=config, callbacks=[RecordSamples(recorder, val_data=None)], run_dir=run_dir, resume=resume)
    return recorder


def test_resume_after_a_crash_gives_the_records_of_an_uninterrupted_run(digits, tmp_path):
    whole = _fit(digits, tmp_path / "whole", 3).compute()
    crashed = tmp_path / "crashed"
    _fit(digits, crashed, 3)
    # Simulate a crash after epoch 2's records were written but before its checkpoint.
    newest = max((crashed / "checkpoints").glob("step-*.pt"))
    newest.unlink()
    resumed = _fit(digits, crashed, 3, resume=True).compute()
    pd.testing.assert_frame_equal(resumed, whole)
    assert sorted(whole["epoch"].unique()) == [0, 1, 2]
    assert whole.groupby("epoch").size().tolist() == [240, 240, 240]  # every training sample, once per epoch


def test_val_samples_are_recorded_each_epoch_in_eval_mode(digits):
    data = digits.subset(np.arange(200))
    train, val = data.subset(np.arange(150)), data.subset(np.arange(150, 200))
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(16,)).fit_input_stats(train.features)
    recorder = SampleRecorder(data.index, 10)
    fit(model, train, val_data=val, config=FitConfig(epochs=2, device="cpu"), callbacks=[RecordSamples(recorder, val_data=val)])
    records = recorder.compute()
    last_val = records[(records["split"] == 1) & (records["epoch"] == 1)].sort_values("index")
    with torch.no_grad():
        ref = reference(model.eval()(val.features).numpy(), val.labels.numpy())
    np.testing.assert_allclose(last_val["loss"], ref["loss"], rtol=1e-4, atol=1e-6)
    assert set(records[records["split"] == 1]["index"]) == set(val.index.tolist())


def test_loading_a_checkpoint_state_drops_parts_written_after_it(tmp_path):
    recorder = SampleRecorder(torch.arange(4), 2, path=tmp_path / "s")
    state = None
    for epoch in range(3):
        recorder.set_epoch(epoch)
        recorder.update(torch.arange(4), torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
        recorder.flush()
        if epoch == 0:
            state = recorder.state_dict()
    assert len(list((tmp_path / "s").glob("part-*"))) == 3
    fresh = SampleRecorder(torch.arange(4), 2, path=tmp_path / "s")
    fresh.load_state_dict(state)
    assert [p.name for p in (tmp_path / "s").glob("part-*")] == ["part-000000.parquet"]
    assert fresh.compute()["epoch"].tolist() == [0, 0, 0, 0]


def test_keep_records_false_keeps_the_same_probability_sums_and_no_rows():
    gen = torch.Generator().manual_seed(3)
    index = torch.arange(40) + 7
    full = SampleRecorder(index, 5, chunk_rows=16)
    sums = SampleRecorder(index, 5, chunk_rows=16, keep_records=False)
    for epoch in range(3):
        for rec in (full, sums):
            rec.set_epoch(epoch)
        for rows in torch.randperm(40, generator=gen).split(12):
            logits, labels = torch.randn(len(rows), 5, generator=gen), torch.randint(0, 5, (len(rows),), generator=gen)
            for rec in (full, sums):
                rec.update(index[rows], logits, labels)
    np.testing.assert_array_equal(sums.mean_probs(), full.mean_probs())
    assert len(full.compute()) == 120 and len(sums.compute()) == 0


def test_recording_fits_own_validation_equals_a_pass_of_our_own_without_the_extra_forward(digits):
    data = digits.subset(np.arange(300))
    train, val = data.subset(np.arange(200)), data.subset(np.arange(200, 300))
    tables, forwards = [], []
    for callback in (lambda r: RecordSamples(r, val_data=val), lambda r: RecordSamples(r, record_validation=True)):
        torch.manual_seed(0)
        model = MLP(64, 10, hidden=(16,)).fit_input_stats(train.features)
        calls = []
        model.register_forward_pre_hook(lambda m, inputs, calls=calls: calls.append(len(inputs[0])))
        recorder = SampleRecorder(data.index, 10)
        fit(model, train, val_data=val, config=FitConfig(epochs=3, batch_size=32, device="cpu"),
            callbacks=[callback(recorder)])
        records = recorder.compute()
        tables.append(records[records["split"] == 1].sort_values(["epoch", "index"]).reset_index(drop=True))
        forwards.append(sum(calls))
    assert len(tables[1]) == 3 * len(val) and set(tables[1]["index"]) == set(val.index.tolist())
    pd.testing.assert_frame_equal(tables[0], tables[1], rtol=1e-5, atol=1e-6)
    assert forwards[0] - forwards[1] == 3 * len(val)  # one validation pass per epoch fewer


def test_val_data_and_record_validation_exclude_each_other(digits):
    with pytest.raises(ValueError, match="not both"):
        RecordSamples(SampleRecorder(digits.index, 10), val_data=digits, record_validation=True)
