"""The training loop, its events and callbacks, checkpoints, run directories, predictions."""

from trainground.engine import detection_task  # noqa: F401  (registers the "detection" task kind)
from trainground.engine.callbacks import Callback, CallbackList
from trainground.engine.config import FitConfig
from trainground.engine.evaluate import evaluate, predict_logits
from trainground.engine.events import Event
from trainground.engine.logging_config import LoggingConfig, MLflowConfig
from trainground.engine.loop import FitResult, fit
from trainground.engine.metrics import MetricsWriter, ScalarSink, read_metrics
from trainground.engine.predict import TrainedModel, load_trained_model, predict
from trainground.engine.progress import ProgressBar
from trainground.engine.run import PreparedData, RunResult, prepare_data, run_fit
from trainground.engine.run_config import DataConfig, NoiseConfig, RunConfig
from trainground.engine.rundir import RunDir
from trainground.engine.sample_recording import RecordSamples
from trainground.engine.state import TrainState
from trainground.engine.task_kinds import TaskKind, register_task_kind, task_kind, task_kinds
from trainground.engine.two_player import Game, Player, TwoPlayerConfig, TwoPlayerResult, TwoPlayerState, fit_two_player

__all__ = [
    "Callback", "CallbackList", "DataConfig", "Event", "FitConfig", "FitResult", "Game", "LoggingConfig", "MLflowConfig",
    "MetricsWriter", "NoiseConfig", "Player", "PreparedData", "ProgressBar", "RecordSamples", "RunConfig", "RunDir",
    "RunResult", "ScalarSink", "TaskKind", "TrainState", "TrainedModel", "TwoPlayerConfig", "TwoPlayerResult",
    "TwoPlayerState", "evaluate", "fit", "fit_two_player", "load_trained_model", "predict", "predict_logits",
    "prepare_data", "read_metrics", "register_task_kind", "run_fit", "task_kind", "task_kinds",
]
