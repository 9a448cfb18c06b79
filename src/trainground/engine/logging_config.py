"""Where a run's scalars go besides ``metrics.jsonl``: the ``logging:`` section of ``config.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from trainground.bounds import AT_LEAST_ONE


@dataclass
class MLflowConfig:
    """An MLflow run that receives the same per-step and per-epoch scalars as ``metrics.jsonl``."""

    # Where runs are stored: "sqlite:///mlflow.db", "http://host:5000", ...; None takes MLflow's
    # own default (the MLFLOW_TRACKING_URI variable, else sqlite:///mlflow.db in the working folder).
    tracking_uri: str | None = None
    # Experiment name (created if missing); None: "trainground".
    experiment: str | None = None
    # Display name of the MLflow run; None: the run directory's name.
    run_name: str | None = None
    # Per-step scalars of every N-th step only (epoch scalars always): MLflow's database stores
    # take about half a millisecond per value, several times a small model's step.
    step_every: Annotated[int, AT_LEAST_ONE] = 1


@dataclass
class LoggingConfig:
    """Optional copies of the scalars to TensorBoard and MLflow (extras ``trainground[tensorboard]``,
    ``trainground[mlflow]``). The CLI turns this section into callbacks
    (``trainground.integrations.build_loggers``); ``run_fit`` itself only writes ``metrics.jsonl``."""

    # TensorBoard log directory (event files go straight into it); None: no TensorBoard.
    tensorboard: str | None = None
    # MLflow run options; None: no MLflow.
    mlflow: MLflowConfig | None = None
