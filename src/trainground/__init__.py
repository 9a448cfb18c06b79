"""trainground: a PyTorch training ground that keeps training stable and finds, explains
and repairs what is wrong with the data and the model."""

from trainground.data import IndexedDataset, inject_label_noise, load_data
from trainground.engine import (
    Callback,
    DataConfig,
    Event,
    FitConfig,
    FitResult,
    NoiseConfig,
    RunConfig,
    RunDir,
    TrainState,
    fit,
    predict,
    run_fit,
)
from trainground.errors import ConfigError, DataError, RunDirError, TraingroundError
from trainground.gradients import Guard, GuardConfig
from trainground.models import ModelConfig, build_model
from trainground.monitors import SampleRecorder
from trainground.recipes.diagnose import diagnose, find_sample_issues
from trainground.recipes.repair import repair, repair_dataset

__version__ = "0.1.0"

__all__ = [
    "Callback", "ConfigError", "DataConfig", "DataError", "Event", "FitConfig", "FitResult", "Guard", "GuardConfig",
    "IndexedDataset", "ModelConfig", "NoiseConfig", "RunConfig", "RunDir", "RunDirError", "SampleRecorder",
    "TrainState", "TraingroundError", "build_model", "diagnose", "find_sample_issues", "fit", "inject_label_noise",
    "load_data", "predict", "run_fit",
]
__all__ += ["repair", "repair_dataset"]
