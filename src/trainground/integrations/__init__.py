"""Bridges to other tools: TensorBoard and MLflow loggers (optional extras, imported only when used)."""

from trainground.integrations.build import build_loggers
from trainground.integrations.mlflow import MLflowLogger
from trainground.integrations.tensorboard import TensorBoardLogger

__all__ = ["MLflowLogger", "TensorBoardLogger", "build_loggers"]
