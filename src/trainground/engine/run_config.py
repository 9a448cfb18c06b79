"""The whole configuration of a run: data, model, loop. It is what ``config.yaml`` holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from trainground.bounds import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, PROBABILITY
from trainground.engine.config import FitConfig
from trainground.engine.config_io import from_dict, to_dict
from trainground.engine.logging_config import LoggingConfig
from trainground.gradients import GuardConfig, TaskGradientConfig
from trainground.losses.build import LossConfig
from trainground.models import ModelConfig


@dataclass
class NoiseConfig:
    """Label noise injected into the training labels (demos, benchmarks), never the test labels."""

    # "symmetric": each corrupted label becomes one of the other classes uniformly;
    # "asymmetric": class c becomes class_map[c] (confusable pairs).
    kind: Literal["symmetric", "asymmetric"] = "symmetric"
    # Share of training labels corrupted (exactly round(rate * n), per class for asymmetric).
    rate: Annotated[float, PROBABILITY] = 0.2
    # Which labels are corrupted; independent of the training seed.
    seed: Annotated[int, NON_NEGATIVE] = 0
    # Class id -> class id, asymmetric only.
    class_map: dict[int, int] | None = None


@dataclass
class DataConfig:
    """Where the data come from and how they are split before training."""

    # A CSV/Parquet file, an image folder (one sub-folder per class) or builtin:NAME.
    source: str = "builtin:digits"
    # Label column of a table (not needed for image folders and builtin data); several columns
    # ("fault,severity" or a list) train one head per column (a multi-target run).
    target: str | tuple[str, ...] | None = None
    # What each target column is: {price: regression} trains a regression head (standardised
    # target, MAE and R^2 in the original units); {grade: class} forces classes. A target not
    # named here is a regression when it looks continuous (numeric, fractional, >= 20 distinct
    # values: the rule that refused such a column as classes), else classes; the choice is printed.
    task_kinds: dict[str, Literal["class", "regression"]] = field(default_factory=dict)
    # Side of the square images are resized to; None keeps the first image's size.
    image_size: Annotated[int, AT_LEAST_ONE] | None = None
    # Decode an image folder batch by batch instead of holding every pixel (None: when the
    # decoded pixels would exceed 512 MiB, data.images.STREAM_BYTES).
    stream_images: bool | None = None
    # A text column with more distinct values than this cannot be one-hot encoded.
    max_categories: Annotated[int, AT_LEAST_ONE] = 50
    # Table columns that are not features (id-like and free-text columns are left out anyway).
    ignore: tuple[str, ...] = ()
    # Share held out as a test split (stratified, seed 0) before anything else; 0 disables it.
    test_fraction: Annotated[float, FRACTION] = 0.0
    # Label noise injected into the training part (for demos and benchmarks).
    noise: NoiseConfig | None = None


@dataclass
class RunConfig:
    """``config.yaml``: sections ``data``, ``model``, ``fit``, ``loss``, ``guard`` and ``logging``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    # Training loss (cross-entropy by default; class weights are counted on the training split).
    loss: LossConfig = field(default_factory=LossConfig)
    # The Guard's options (AMP, accumulation, clipping, spike skip/rollback); defaults win benchmark C.
    guard: GuardConfig = field(default_factory=GuardConfig)
    # Copies of the scalars to TensorBoard / MLflow (optional extras); none by default.
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Multi-target runs: per-task gradients (norms and cosines logged, per-task clipping, PCGrad); off by default.
    tasks: TaskGradientConfig = field(default_factory=TaskGradientConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "config") -> RunConfig:
        config = from_dict(cls, values, where)
        config.loss.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
