"""trainground: a PyTorch training ground that keeps neural-network training stable and finds,
explains and repairs what is wrong with the data and the model.

The names below are imported on first use (PEP 562), so ``import trainground`` and the
command line's ``--help`` do not pay for torch, scikit-learn and pandas until a name that
needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "IndexedDataset": "trainground.data",
    "inject_label_noise": "trainground.data",
    "load_data": "trainground.data",
    "Callback": "trainground.engine",
    "DataConfig": "trainground.engine",
    "Event": "trainground.engine",
    "FitConfig": "trainground.engine",
    "FitResult": "trainground.engine",
    "NoiseConfig": "trainground.engine",
    "RunConfig": "trainground.engine",
    "RunDir": "trainground.engine",
    "TrainState": "trainground.engine",
    "fit": "trainground.engine",
    "predict": "trainground.engine",
    "run_fit": "trainground.engine",
    "ConfigError": "trainground.errors",
    "DataError": "trainground.errors",
    "RunDirError": "trainground.errors",
    "TraingroundError": "trainground.errors",
    "Guard": "trainground.gradients",
    "GuardConfig": "trainground.gradients",
    "ModelConfig": "trainground.models",
    "build_model": "trainground.models",
    "SampleRecorder": "trainground.monitors",
    "diagnose": "trainground.recipes.diagnose",
    "find_sample_issues": "trainground.recipes.diagnose",
    "repair": "trainground.recipes.repair",
    "repair_dataset": "trainground.recipes.repair",
}

__all__ = [
    "Callback", "ConfigError", "DataConfig", "DataError", "Event", "FitConfig", "FitResult", "Guard", "GuardConfig",
    "IndexedDataset", "ModelConfig", "NoiseConfig", "RunConfig", "RunDir", "RunDirError", "SampleRecorder",
    "TrainState", "TraingroundError", "build_model", "diagnose", "find_sample_issues", "fit", "inject_label_noise",
    "load_data", "predict", "repair", "repair_dataset", "run_fit",
]  # the keys of _EXPORTS (tests/test_fast_start.py checks)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trainground' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
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
