"""The ``logging:`` section of a run's config as callbacks for ``fit``/``run_fit``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainground.engine.logging_config import LoggingConfig

if TYPE_CHECKING:
    from trainground.integrations.mlflow import MLflowLogger
    from trainground.integrations.tensorboard import TensorBoardLogger


def build_loggers(config: LoggingConfig) -> list[TensorBoardLogger | MLflowLogger]:
    """A :class:`TensorBoardLogger` and/or an :class:`MLflowLogger` as ``config`` asks.

    Args:
        config: the run config's ``logging`` section.

    Returns:
        The loggers (empty when the section asks for none). A logger whose package is not
        installed raises a ``ConfigError`` naming the pip command, before any training.
    """
    loggers: list[TensorBoardLogger | MLflowLogger] = []
    if config.tensorboard is not None:
        from trainground.integrations.tensorboard import TensorBoardLogger

        loggers.append(TensorBoardLogger(config.tensorboard))
    if config.mlflow is not None:
        from trainground.integrations.mlflow import MLflowLogger

        mlflow = config.mlflow
        loggers.append(MLflowLogger(mlflow.tracking_uri, mlflow.experiment, mlflow.run_name,
                                    step_every=mlflow.step_every))
    return loggers
