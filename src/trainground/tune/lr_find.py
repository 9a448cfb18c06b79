"""``trainground lr-find``: the learning-rate range test on a run's data, written as a run folder.

The folder holds ``config.yaml`` (the run config, with ``fit.lr`` set to the suggestion, so
``fit --config`` / ``diagnose --config`` accept it as it is) and ``lr_find.json`` (the curve
and its reading); ``report.html`` plots the curve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainground.data import target_list, tasks_of
from trainground.engine.atomic import atomic_write_text
from trainground.engine.fit_setup import resolve_device
from trainground.engine.lr_find import LRFindConfig, LRFindResult, lr_range_test
from trainground.engine.run import build_training, prepare_data
from trainground.engine.run_config import RunConfig
from trainground.engine.rundir import RunDir
from trainground.errors import ConfigError
from trainground.jsonsafe import json_safe

LR_FIND_FILE = "lr_find.json"


@dataclass
class LRFindRun:
    """A finished range test: its folder and result."""

    run_dir: RunDir
    result: LRFindResult


def lr_find(config: RunConfig, *, out: str | Path, sweep: LRFindConfig | None = None,
            overwrite: bool = False) -> LRFindRun:
    """Run the range test on ``config``'s data, model, optimizer and batch size; write ``out``.

    The model is built exactly as ``run_fit`` would build it (same split, same input
    standardisation, same seed), so the suggested lr applies to that run.
    """
    sweep = sweep or LRFindConfig()
    if target_list(config.data.target) is not None:
        raise ConfigError(f"lr-find takes one label column; data.target {config.data.target} names several")
    prepared = prepare_data(config.data)
    if tasks_of(prepared.train) is not None:
        raise ConfigError(f"lr-find runs the range test on one class column; {config.data.target!r} is a regression "
                          "target: choose fit.lr yourself (Adam's 1e-3 is the default) or lr-find a class column")
    train, _, model, loss_fn = build_training(config, prepared)
    result = lr_range_test(model, train, fit_config=config.fit, config=sweep, loss_fn=loss_fn,
                           device=resolve_device(config.fit.device))
    run = RunDir.create(out, overwrite=overwrite, inputs=[config.data.source])
    suggested = RunConfig.from_dict(config.to_dict())
    suggested.fit.lr = float(result.suggestion)
    suggested.fit.auto_schedule = "never"  # the lr is chosen: fit must not choose another
    run.write_config(suggested.to_dict())
    payload = {"sweep": json_safe(vars(sweep)), **json_safe(result.to_json()),
               "optimizer": config.fit.optimizer, "batch_size": config.fit.batch_size}
    atomic_write_text(run.path / LR_FIND_FILE, json.dumps(payload, indent=1))
    return LRFindRun(run_dir=run, result=result)
