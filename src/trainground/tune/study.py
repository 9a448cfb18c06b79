"""``trainground tune``: an Optuna study whose trials are ordinary trainground runs.

Every trial trains with ``run_fit`` into ``OUT/trials/trial-NNNN`` (a complete run
directory: config, metrics, findings, model) under the ``DiagnosisCallback`` and a
:class:`~trainground.tune.pruning.TrialWatch`. The study lives in ``OUT/study.db`` unless
``storage`` says otherwise; several workers (processes, machines) started on the same
storage and study name share one search. At the end each worker rewrites
``OUT/summary.json`` (trials per state, pruned trials per reason, compute spent) and
``OUT/best_config.yaml`` (a config that ``fit`` and ``diagnose`` accept) from the storage.

References:
    Akiba et al., "Optuna: A Next-generation Hyperparameter Optimization Framework", KDD 2019.
    Bergstra et al., "Algorithms for Hyper-Parameter Optimization" (TPE), NeurIPS 2011.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainground.diagnosis import DiagnosisCallback
from trainground.engine.run import run_fit
from trainground.engine.run_config import RunConfig
from trainground.errors import ConfigError
from trainground.tune.config import TuneConfig
from trainground.tune.pruning import TrialWatch
from trainground.tune.space import ParamSpec, apply, sample, space_to_dict
from trainground.tune.storage import folder_lock, open_storage, open_tune_folder, storage_url
from trainground.tune.summary import write_outputs
from trainground.tune.warm_start import warm_start

logger = logging.getLogger("trainground.tune")
TRIALS_DIR = "trials"


@dataclass
class TuneResult:
    """A worker's finished search: the folder, the study, and what ``summary.json`` says."""

    out: Path
    study: Any
    summary: dict[str, Any]


def sampler_for(options: TuneConfig, *, seed: int | None = None) -> Any:
    import optuna

    seed = options.seed if seed is None else seed
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner_for(options: TuneConfig, epochs: int) -> Any:
    import optuna

    if options.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options.startup_trials,
                                           n_warmup_steps=options.warmup_epochs)
    if options.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()


def tune(base: dict[str, Any], *, out: str | Path, options: TuneConfig | None = None,
         space: dict[str, ParamSpec], warm_from: str | None = None, space_given: bool = True,
         progress: Any = None) -> TuneResult:
    """Search ``space`` around the run config ``base`` and write ``out``.

    Args:
        base: a ``config.yaml`` dict (data source and target set) every trial starts from.
        out: the tune folder (created, or joined when it already holds this tune).
        options: trials, storage, sampler, pruner, diagnosis-aware pruning.
        space: dotted config key -> parameter.
        warm_from: a study name in the same storage or an earlier tune folder whose best
            trials are enqueued first (and whose space is taken when ``space_given`` is False).
        progress: called with one line per finished trial (e.g. ``console.print``).
    """
    import optuna

    options = options or TuneConfig()
    out = Path(out)
    base_config = RunConfig.from_dict(base, where="config")
    if base_config.fit.val_fraction <= 0:
        raise ConfigError("tune needs a validation split: fit.val_fraction must be > 0")
    open_tune_folder(out)
    with folder_lock(out):  # workers of one folder create the tables and the study one at a time
        study = _create_study(options, out, base_config.fit.epochs)
        # Each worker samples with its own seed (seed + 1000 x its start order): workers with one
        # seed would draw the same random start-up trials and train the same configs twice.
        worker = int(study.user_attrs.get("workers", 0))
        study.set_user_attr("workers", worker + 1)
        study.sampler = sampler_for(options, seed=options.seed + 1000 * worker)
    if warm_from is not None:
        space = warm_start(study, warm_from, space=space, space_given=space_given, top=options.warm_start_top,
                           storage=options.storage)
    if "space" not in study.user_attrs:  # the first worker records the space (history transfer reads it)
        study.set_user_attr("space", space_to_dict(space))
    trials_dir = out / TRIALS_DIR
    with folder_lock(out):
        from trainground.engine.manifest import make_dirs

        make_dirs(trials_dir)
    objective = _Objective(base, space, options, trials_dir, progress)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=options.trials, timeout=options.timeout, catch=(ConfigError,))
    with folder_lock(out):
        summary = write_outputs(study, out, base=base, space=space)
    return TuneResult(out=out, study=study, summary=summary)


def _create_study(options: TuneConfig, out: Path, epochs: int) -> Any:
    """Create or load the study; retried a few times, since workers on other machines (a shared
    PostgreSQL) can race to create the same tables or study (the loser sees an IntegrityError)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(5):
        try:
            storage = open_storage(storage_url(options.storage, out))
            return optuna.create_study(study_name=options.study, storage=storage, direction="maximize",
                                       sampler=sampler_for(options), pruner=pruner_for(options, epochs),
                                       load_if_exists=True)
        except SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


class _Objective:
    """One trial: sample, train a run directory, report, prune."""

    def __init__(self, base: dict[str, Any], space: dict[str, ParamSpec], options: TuneConfig, trials_dir: Path,
                 progress: Any) -> None:
        self.base, self.space, self.options, self.trials_dir, self.progress = base, space, options, trials_dir, progress

    def __call__(self, trial: Any) -> float:
        import optuna

        values = sample(self.space, trial)
        config = apply(self.base, values, where=f"trial {trial.number}")
        out = self.trials_dir / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(out))
        diagnosis = DiagnosisCallback()
        watch = TrialWatch(trial, diagnosis if self.options.diagnosis_pruning else None, metric=self.options.metric,
                           prune_checks=self.options.prune_checks, use_pruner=self.options.pruner != "none")
        started = time.perf_counter()
        result = run_fit(config, out=out, callbacks=[diagnosis, watch])
        seconds = time.perf_counter() - started
        trial.set_user_attr("seconds", round(seconds, 3))
        trial.set_user_attr("epochs", len(result.fit.history))
        trial.set_user_attr("steps", result.fit.steps)
        value = watch.values[-1] if watch.values else float("nan")
        if watch.pruned_reason is not None:
            trial.set_user_attr("pruned_reason", watch.pruned_reason)
            trial.set_user_attr("pruned_by", watch.pruned_by)
            trial.set_user_attr("pruned_epoch", watch.pruned_epoch)
            self._say(f"trial {trial.number}: pruned at epoch {watch.pruned_epoch} ({watch.pruned_reason}: "
                      f"{watch.pruned_by})")
            raise optuna.TrialPruned(f"{watch.pruned_reason}: {watch.pruned_by}")
        self._say(f"trial {trial.number}: {self.options.metric} {value:.4f} in {len(result.fit.history)} epochs")
        return value

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)
