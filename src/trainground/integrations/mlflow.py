"""``MLflowLogger``: ``metrics.jsonl``'s scalars as an MLflow run's metric histories, resumable."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from trainground.engine.metrics import ScalarSink
from trainground.engine.state import TrainState
from trainground.errors import ConfigError
from trainground.integrations.extras import require
from trainground.integrations.records import (
    flatten,
    records_before,
    run_params,
    scalars,
)

# MLflow's log_batch limits (per request).
_MAX_METRICS, _MAX_PARAMS = 1000, 100
DEFAULT_EXPERIMENT = "trainground"


class MLflowLogger(ScalarSink):
    """Logs every per-step and per-epoch record of ``metrics.jsonl`` to an MLflow run, keyed by
    the global step (metrics ``step/loss``, ``step/grad_norm``, ..., ``epoch/val_accuracy``),
    and the run's config as parameters.

    MLflow cannot delete a logged value, so a resumed run must never log a step twice: in a
    run with a directory (checkpoints), values are sent at each checkpoint, up to the
    checkpoint's step, and at the end of training; the checkpoint keeps the MLflow run id and
    ``fit(..., resume=True)`` continues that same MLflow run from the checkpoint's step (a logger
    that joins a run on resume starts a new MLflow run with the run's ``metrics.jsonl`` up to
    the checkpoint). The MLflow view therefore lags by at most one checkpoint interval (an epoch by default;
    ``FitConfig.checkpoint_every`` shortens it). Without a run directory nothing can be resumed
    and values are sent at every flush of the metrics writer.

    Args:
        tracking_uri: ``"sqlite:///mlflow.db"``, ``"http://host:5000"``, ...; None: MLflow's
            default (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
        experiment: experiment name, created if missing; None: ``"trainground"``.
        run_name: MLflow run name; None: the run directory's name.
        params: parameters to record; None: the run's ``config.yaml`` (or the loop's and the
            Guard's options for a run without a directory), flattened.
        step_every: log the per-step scalars of every N-th step only (epoch scalars always).
            MLflow's database stores take about half a millisecond per value, so a fast loop
            may want fewer; 1 keeps every step, like ``metrics.jsonl``.
    """

    def __init__(
        self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None, *,
        params: Mapping[str, Any] | None = None, step_every: int = 1,
    ) -> None:
        if step_every < 1:
            raise ConfigError(f"MLflowLogger: step_every must be >= 1, got {step_every}")
        tracking = require("mlflow.tracking", package="mlflow-skinny", extra="mlflow", what="MLflow logging")
        self._entities = require("mlflow.entities", package="mlflow-skinny", extra="mlflow", what="MLflow logging")
        try:
            # The client opens its store now, so a store that lacks a package fails before training.
            self._client = tracking.MlflowClient(tracking_uri=tracking_uri)
        except ImportError as err:  # sqlite:// and other database stores need sqlalchemy + alembic
            raise ConfigError(
                f"MLflow logging to {tracking_uri or 'the default store'} needs {err.name or 'a package'}, "
                "which is not installed: pip install 'trainground[mlflow]'"
            ) from None
        self.tracking_uri = tracking_uri
        self.experiment = experiment or DEFAULT_EXPERIMENT
        self.run_name = run_name
        self.params = None if params is None else flatten(params)
        self.step_every = step_every
        self.run_id: str | None = None
        self._restored = False  # run_id came from a checkpoint (not from an earlier fit of this object)
        self._held: list[Any] = []  # Metric entities not yet sent
        self._live = False

    def on_fit_start(self, state: TrainState) -> None:
        self._live = state.run_dir is None
        self._held.clear()
        restored, self._restored = self._restored, False
        if restored and self.run_id is not None:  # resumed: continue the checkpoint's MLflow run
            self._client.update_run(self.run_id, status="RUNNING")
            return
        found = self._client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else self._client.create_experiment(self.experiment)
        tags = {} if state.run_dir is None else {"trainground.run_dir": str(state.run_dir.path.resolve())}
        name = self.run_name or (None if state.run_dir is None else state.run_dir.path.name)
        self.run_id = self._client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        params = self.params if self.params is not None else run_params(state)
        Param = self._entities.Param
        items = [Param(key, str(value)) for key, value in params.items()]
        for i in range(0, len(items), _MAX_PARAMS):
            self._client.log_batch(self.run_id, params=items[i : i + _MAX_PARAMS])
        self.write_records(records_before(state))  # joined on resume: the steps already done

    def write_records(self, records: list[dict[str, Any]]) -> None:
        Metric = self._entities.Metric
        now = int(time.time() * 1000)
        for record in records:
            step = int(record["step"])
            if record["kind"] == "step" and step % self.step_every:
                continue
            self._held.extend(Metric(tag, value, now, step) for tag, value in scalars(record))
        if self._live:
            self._send()

    def on_checkpoint(self, state: TrainState) -> None:
        # The metrics writer has handed over every record up to state.step: these are final.
        self._send()

    def on_fit_end(self, state: TrainState) -> None:
        self._send()
        if self.run_id is not None:
            self._client.set_terminated(self.run_id)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.run_id is None else {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
        self._restored = self.run_id is not None

    def destination(self) -> str:
        """One line saying where the scalars went, for the end of a command."""
        return (f"MLflow: run {self.run_id} of experiment {self.experiment!r} in "
                f"{self._client.tracking_uri}")

    def _send(self) -> None:
        if self.run_id is None:
            raise RuntimeError("MLflowLogger got records before on_fit_start; pass it to fit(callbacks=...)")
        held, self._held = self._held, []
        for i in range(0, len(held), _MAX_METRICS):
            self._client.log_batch(self.run_id, metrics=held[i : i + _MAX_METRICS])
