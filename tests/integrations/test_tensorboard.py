"""TensorBoardLogger: the event files hold metrics.jsonl's scalars, once per step, also after a resume."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from trainground.engine import FitConfig, fit
from trainground.gradients import GuardConfig

pytest.importorskip("tensorboard", reason="TensorBoard tests need pip install 'trainground[tensorboard]' (in [dev])")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainground.integrations import TensorBoardLogger


def read_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] sorted by step, as TensorBoard itself loads the folder (or one file)."""
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})  # 0: keep every value
    acc.Reload()
    return {tag: sorted((e.step, e.value) for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}


def as_float32(series):
    # TensorBoard stores scalars as float32: compare with the file's values rounded the same way.
    return {tag: [(step, float(np.float32(v))) for step, v in values] for tag, values in series.items()}


def test_scalars_equal_metrics_jsonl_with_accumulation(digits, tmp_path, model_factory, jsonl_series):
    cfg = FitConfig(epochs=2, batch_size=50, log_every=7, device="cpu")
    logger = TensorBoardLogger(tmp_path / "tb")
    result = fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run", callbacks=[logger],
                 guard=GuardConfig(accumulation=2))
    got, want = read_scalars(tmp_path / "tb"), as_float32(jsonl_series(tmp_path / "run" / "metrics.jsonl"))
    assert set(got) == set(want) and len(want) == 11  # 7 per-step tags + 4 per-epoch tags
    assert got == want
    assert [s for s, _ in got["step/loss"]] == list(range(1, result.steps + 1))
    assert {v for _, v in got["step/accum_k"]} == {2.0}
    assert [v for _, v in got["epoch/val_accuracy"]] == [
        pytest.approx(h["val_accuracy"], abs=1e-6) for h in result.history]
    # the run's config as hyper-parameters (HPARAMS tab)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    hparams = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"fit.batch_size" in hparams["_hparams_/experiment"] and b"epoch/val_accuracy" in hparams["_hparams_/experiment"]


def test_resume_keeps_every_step_once(digits, tmp_path, model_factory, jsonl_series, crash_at):
    cfg = FitConfig(epochs=3, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    run, tb = tmp_path / "run", tmp_path / "tb"
    first = TensorBoardLogger(tb)
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=run, callbacks=[first, crash_at(25)])
    first._writer.close()  # what a dying process leaves on disk: steps after the checkpoint (20) too
    (old_file,) = tb.iterdir()
    assert max(s for s, _ in read_scalars(old_file)["step/loss"]) == 23
    result = fit(model_factory(), digits, config=cfg, run_dir=run, resume=True,
                 callbacks=[TensorBoardLogger(tb), crash_at(10**9)])
    assert len(list(tb.iterdir())) == 2
    # the old file was cut back to the checkpoint...
    assert max(s for s, _ in read_scalars(old_file)["step/loss"]) == 20
    # ...and the folder holds each step once, equal to metrics.jsonl (itself cut back on resume)
    got, want = read_scalars(tb), as_float32(jsonl_series(run / "metrics.jsonl"))
    assert got == want
    assert [s for s, _ in got["step/loss"]] == list(range(1, result.steps + 1))


def test_purge_marker_hides_stale_steps_even_if_the_old_file_is_not_cut(digits, tmp_path, model_factory,
                                                                        jsonl_series, crash_at):
    cfg = FitConfig(epochs=2, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    run, tb = tmp_path / "run", tmp_path / "tb"
    first = TensorBoardLogger(tb)
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=run, callbacks=[first, crash_at(25)])
    first._writer.close()
    resumed = TensorBoardLogger(tb)
    # e.g. the old file could not be cut (another machine wrote it): the state is read, the file stays
    resumed.load_state_dict = lambda state: setattr(resumed, "_checkpoint", dict(state))
    fit(model_factory(), digits, config=cfg, run_dir=run, resume=True, callbacks=[resumed, crash_at(10**9)])
    counts = defaultdict(int)
    for step, _ in read_scalars(tb)["step/loss"]:
        counts[step] += 1
    assert max(counts.values()) == 1
    assert read_scalars(tb) == as_float32(jsonl_series(run / "metrics.jsonl"))


def test_run_without_directory_logs_every_step(digits, tmp_path, model_factory):
    result = fit(model_factory(), digits, config=FitConfig(epochs=1, batch_size=100, device="cpu"),
                 callbacks=[TensorBoardLogger(tmp_path / "tb", params={"note": "in memory"})])
    got = read_scalars(tmp_path / "tb")
    assert [s for s, _ in got["step/lr"]] == list(range(1, result.steps + 1))
    assert got["epoch/train_loss"] == [(result.steps, pytest.approx(result.history[0]["train_loss"], rel=1e-6))]


def test_logger_joining_on_resume_replays_the_steps_before(digits, tmp_path, model_factory, jsonl_series, crash_at):
    cfg = FitConfig(epochs=2, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=run, callbacks=[crash_at(25)])
    fit(model_factory(), digits, config=cfg, run_dir=run, resume=True,
        callbacks=[crash_at(10**9), TensorBoardLogger(tmp_path / "tb")])
    assert read_scalars(tmp_path / "tb") == as_float32(jsonl_series(run / "metrics.jsonl"))


def test_same_logger_object_resumed_in_the_same_process(digits, tmp_path, model_factory, jsonl_series, crash_at):
    # a notebook: fit is interrupted, the same callbacks go to fit(resume=True), then to a new run
    cfg = FitConfig(epochs=2, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    logger, crash = TensorBoardLogger(tmp_path / "tb"), crash_at(25)
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run", callbacks=[logger, crash])
    crash.step = 10**9
    fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run", resume=True, callbacks=[logger, crash])
    assert read_scalars(tmp_path / "tb") == as_float32(jsonl_series(tmp_path / "run" / "metrics.jsonl"))
    logger.log_dir = tmp_path / "tb2"
    fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run2", callbacks=[logger, crash])
    assert read_scalars(tmp_path / "tb2") == as_float32(jsonl_series(tmp_path / "run2" / "metrics.jsonl"))
