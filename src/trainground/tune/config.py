"""Options of ``trainground tune``, and the YAML that holds them beside the run config.

The ``--config`` YAML of ``tune`` is a ``config.yaml`` (sections data, model, fit, loss,
guard: the base every trial starts from) plus two sections of its own: ``tune`` (the
options below) and ``space`` (see :mod:`trainground.tune.space`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from trainground.bounds import AT_LEAST_ONE, POSITIVE
from trainground.engine.config_io import from_dict, read_yaml
from trainground.tune.space import ParamSpec, default_space, parse_space

# Error-severity findings of these training checks end a trial at once (diagnosis-aware
# pruning), keyed by the pathology they show. A non-finite training or validation loss is
# pruned as "nan" without waiting for a check.
PATHOLOGIES = {
    "lr_too_high": "divergence",          # its error level needs a diverged loss
    "exploding_gradients": "divergence",
    "dead_units": "dead network",
    "representation_collapse": "collapse",
}


@dataclass
class TuneConfig:
    """How the search runs. Each field says why its default is what it is."""

    # Trials this worker runs (Optuna's n_trials): several workers on one study add up.
    trials: Annotated[int, AT_LEAST_ONE] = 20
    # Stop starting trials after this many seconds (None: no limit).
    timeout: Annotated[float, POSITIVE] | None = None
    # Study name in the storage; workers that share it share the search.
    study: str = "trainground"
    # Any SQLAlchemy URL (sqlite:///..., postgresql://...) or journal:PATH (Optuna's journal
    # file, safe for processes on one machine); None: sqlite in the output folder.
    storage: str | None = None
    # "tpe" (Bergstra et al. 2011, Optuna's default) or "random" (the baseline).
    sampler: Literal["tpe", "random"] = "tpe"
    # Pruner fed by each epoch's validation metric: "median" (Optuna's default), "hyperband"
    # (Li et al. 2018) or "none".
    pruner: Literal["median", "hyperband", "none"] = "median"
    # Prune a trial as soon as its training diagnosis finds an error-severity pathology.
    diagnosis_pruning: bool = True
    # Which checks' errors prune (see PATHOLOGIES); the training checks run at every epoch end.
    prune_checks: tuple[str, ...] = tuple(PATHOLOGIES)
    # The metric each epoch reports and the study maximises (validation accuracy: comparable
    # across losses, unlike the validation loss with label smoothing).
    metric: Literal["val_accuracy"] = "val_accuracy"
    # Seed of the sampler (the trials' own training seed is fit.seed).
    seed: int = 0
    # With --warm-start, how many of the earlier study's best trials are enqueued first.
    warm_start_top: Annotated[int, AT_LEAST_ONE] = 5
    # Median pruner: trials completed before it prunes, and epochs a trial runs before it may be.
    startup_trials: Annotated[int, AT_LEAST_ONE] = 5
    warmup_epochs: int = 1


@dataclass
class TuneFile:
    """What a tune YAML holds: the base run config dict, the tune options and the space."""

    base: dict[str, Any] = field(default_factory=dict)
    options: TuneConfig = field(default_factory=TuneConfig)
    space: dict[str, ParamSpec] = field(default_factory=default_space)
    space_given: bool = False


def read_tune_file(path: Path | None) -> TuneFile:
    """Split a tune YAML into base config, options and space (defaults for what is missing)."""
    if path is None:
        return TuneFile()
    values = dict(read_yaml(path) or {})
    options = from_dict(TuneConfig, values.pop("tune", None), f"{path}: tune")
    space_values = values.pop("space", None)
    space = parse_space(space_values, f"{path}: space") if space_values is not None else default_space()
    return TuneFile(base=values, options=options, space=space, space_given=space_values is not None)


def cli_overrides(spec: TuneFile, data: str, *, target: str | None, epochs: int | None,
                  **options: Any) -> tuple[dict[str, Any], TuneConfig]:
    """The base config and the options with the command line's values over the YAML's
    (``None`` = not given on the command line)."""
    base = {section: dict(values or {}) for section, values in spec.base.items()}
    base.setdefault("data", {})["source"] = data
    if target is not None:
        base["data"]["target"] = target
    if epochs is not None:
        base.setdefault("fit", {})["epochs"] = epochs
    given = {k: v for k, v in options.items() if v is not None}
    return base, from_dict(TuneConfig, {**vars(spec.options), **given}, "options")
