"""MLflowLogger: metric histories equal metrics.jsonl, once per step, also after a resume (local sqlite store)."""

from __future__ import annotations

import pytest

from trainground.engine import FitConfig, fit
from trainground.gradients import GuardConfig

pytest.importorskip("mlflow", reason="MLflow tests need pip install 'trainground[mlflow]' (in [dev])")
pytest.importorskip("sqlalchemy", reason="MLflow's sqlite store needs pip install 'trainground[mlflow]' (in [dev])")
from mlflow.tracking import MlflowClient

from trainground.integrations import MLflowLogger


def histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(uri)
    keys = client.get_run(run_id).data.metrics
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


def test_histories_equal_metrics_jsonl_with_accumulation(digits, tmp_path, tracking_uri, model_factory,
                                                         jsonl_series):
    logger = MLflowLogger(tracking_uri, experiment="equal", run_name="digits")
    cfg = FitConfig(epochs=2, batch_size=50, log_every=7, device="cpu")
    result = fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run", callbacks=[logger],
                 guard=GuardConfig(accumulation=2))
    got, want = histories(tracking_uri, logger.run_id), jsonl_series(tmp_path / "run" / "metrics.jsonl")
    assert len(want) == 11 and got == want  # float64 both sides: exact
    assert [s for s, _ in got["step/loss"]] == list(range(1, result.steps + 1))
    assert {v for _, v in got["step/accum_k"]} == {2.0}
    run = MlflowClient(tracking_uri).get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "digits"
    assert run.data.params["fit.batch_size"] == "50" and run.data.params["guard.accumulation"] == "2"
    assert run.data.tags["trainground.run_dir"] == str((tmp_path / "run").resolve())


def test_resume_continues_the_same_run_with_every_step_once(digits, tmp_path, tracking_uri, model_factory,
                                                           jsonl_series, crash_at):
    cfg = FitConfig(epochs=3, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    run = tmp_path / "run"
    first = MLflowLogger(tracking_uri, experiment="resume")
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=run, callbacks=[first, crash_at(25)])
    # metrics.jsonl got steps up to 23 before the crash; MLflow only what the checkpoint (step 20) covers
    assert max(s for s, _ in jsonl_series(run / "metrics.jsonl")["step/loss"]) == 23
    assert [s for s, _ in histories(tracking_uri, first.run_id)["step/loss"]] == list(range(1, 21))
    second = MLflowLogger(tracking_uri, experiment="resume")
    result = fit(model_factory(), digits, config=cfg, run_dir=run, resume=True, callbacks=[second, crash_at(10**9)])
    assert second.run_id == first.run_id
    got = histories(tracking_uri, first.run_id)
    assert got == jsonl_series(run / "metrics.jsonl")
    assert [s for s, _ in got["step/loss"]] == list(range(1, result.steps + 1))
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("resume")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert client.get_run(first.run_id).info.status == "FINISHED"


def test_run_without_directory_sends_at_every_flush(digits, tracking_uri, model_factory, crash_at):
    logger = MLflowLogger(tracking_uri, experiment="live", params={"model": {"hidden": [32]}})
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=FitConfig(epochs=2, batch_size=100, log_every=4, device="cpu"),
            callbacks=[logger, crash_at(22)])
    got = histories(tracking_uri, logger.run_id)
    # nothing to resume, so nothing is held back: every flushed step (4, 8, ..., 17 at the epoch end, 21) is there
    assert [s for s, _ in got["step/loss"]] == list(range(1, 22))
    assert len(got["epoch/val_accuracy"]) == 1
    assert MlflowClient(tracking_uri).get_run(logger.run_id).data.params == {"model.hidden": "[32]"}


def test_step_every_keeps_every_nth_step_and_all_epochs(digits, tmp_path, tracking_uri, model_factory, jsonl_series):
    logger = MLflowLogger(tracking_uri, experiment="every", step_every=5)
    fit(model_factory(), digits, config=FitConfig(epochs=2, batch_size=100, device="cpu"), run_dir=tmp_path / "run",
        callbacks=[logger])
    got, want = histories(tracking_uri, logger.run_id), jsonl_series(tmp_path / "run" / "metrics.jsonl")
    assert got["step/loss"] == [(s, v) for s, v in want["step/loss"] if s % 5 == 0] and len(got["step/loss"]) == 6
    assert got["epoch/val_loss"] == want["epoch/val_loss"]


def test_logger_joining_on_resume_replays_the_steps_before(digits, tmp_path, tracking_uri, model_factory,
                                                           jsonl_series, crash_at):
    cfg = FitConfig(epochs=2, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=run, callbacks=[crash_at(25)])
    logger = MLflowLogger(tracking_uri, experiment="join")
    fit(model_factory(), digits, config=cfg, run_dir=run, resume=True, callbacks=[crash_at(10**9), logger])
    assert histories(tracking_uri, logger.run_id) == jsonl_series(run / "metrics.jsonl")


def test_same_logger_object_resumed_in_the_same_process(digits, tmp_path, tracking_uri, model_factory,
                                                        jsonl_series, crash_at):
    # a notebook: fit is interrupted, the same callbacks go to fit(resume=True), then to a new run
    cfg = FitConfig(epochs=2, batch_size=100, log_every=3, checkpoint_every=10, device="cpu")
    logger, crash = MLflowLogger(tracking_uri, experiment="notebook"), crash_at(25)
    with pytest.raises(KeyboardInterrupt):
        fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run", callbacks=[logger, crash])
    crash.step = 10**9
    first_id = logger.run_id
    fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run", resume=True, callbacks=[logger, crash])
    assert logger.run_id == first_id
    assert histories(tracking_uri, first_id) == jsonl_series(tmp_path / "run" / "metrics.jsonl")
    fit(model_factory(), digits, config=cfg, run_dir=tmp_path / "run2", callbacks=[logger, crash])
    assert logger.run_id != first_id  # a new training is a new MLflow run, not appended to the last one
    assert histories(tracking_uri, logger.run_id) == jsonl_series(tmp_path / "run2" / "metrics.jsonl")
