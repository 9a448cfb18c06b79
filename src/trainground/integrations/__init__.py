"""Bridges to other tools: TensorBoard and MLflow loggers (optional extras, imported only when used),
and the diagnosis inside your own training (``Watch`` for a plain loop; the Lightning and
transformers callbacks live in ``integrations.lightning`` and ``integrations.transformers``)."""

from trainground.integrations.build import build_loggers
from trainground.integrations.mlflow import MLflowLogger
from trainground.integrations.own_loop import Watch
from trainground.integrations.second_pass import SecondPass
from trainground.integrations.session import SessionConfig, SessionResult, TrainingSession
from trainground.integrations.tensorboard import TensorBoardLogger

__all__ = [
    "MLflowLogger", "SecondPass", "SessionConfig", "SessionResult", "TensorBoardLogger", "TrainingSession", "Watch",
    "build_loggers",
]
