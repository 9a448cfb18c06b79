"""History transfer: start a study from the best trials of an earlier one.

``--warm-start`` names an earlier tune folder (its ``study.db`` and ``summary.json``) or a
study in the same storage. Its best completed trials are enqueued (Optuna runs enqueued
parameters before it samples), so a new dataset of the same kind starts from what worked;
when the new tune gives no space of its own it searches the earlier study's space.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from trainground.errors import ConfigError
from trainground.tune.space import ParamSpec, parse_space
from trainground.tune.storage import DB_NAME, open_storage, storage_url

logger = logging.getLogger("trainground.tune")


def load_earlier(source: str, storage: str | None) -> Any:
    """The earlier study: a tune folder's study, or the study named ``source`` in ``storage``."""
    import optuna

    folder = Path(source)
    if folder.is_dir():
        summary = folder / "summary.json"
        if not (folder / DB_NAME).is_file() or not summary.is_file():
            raise ConfigError(f"--warm-start {source}: not a tune folder (no {DB_NAME} and summary.json)")
        name = json.loads(summary.read_text(encoding="utf-8"))["study"]
        return optuna.load_study(study_name=name, storage=open_storage(storage_url(None, folder)))
    if storage is None:
        raise ConfigError(f"--warm-start {source}: no such tune folder; a study name needs --storage")
    try:
        return optuna.load_study(study_name=source, storage=open_storage(storage))
    except KeyError:
        raise ConfigError(f"--warm-start {source}: no such study in {storage}") from None


def warm_start(study: Any, source: str, *, space: dict[str, ParamSpec], space_given: bool, top: int,
               storage: str | None) -> dict[str, ParamSpec]:
    """Enqueue the ``top`` best completed trials of the earlier study into ``study``; return the space to search."""
    from optuna.trial import TrialState

    earlier = load_earlier(source, storage)
    if not space_given and "space" in earlier.user_attrs:
        space = parse_space(earlier.user_attrs["space"], f"{source}: space")
    complete = [t for t in earlier.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    best = sorted(complete, key=lambda t: t.value, reverse=True)[:top]
    for trial in best:
        params = {k: v for k, v in trial.params.items() if k in space}
        if params:
            study.enqueue_trial(params, user_attrs={"warm_start_from": f"{earlier.study_name}#{trial.number}"},
                                skip_if_exists=True)
    logger.warning("warm start: enqueued the %d best of %d completed trials of study %r", len(best), len(complete),
                   earlier.study_name)
    return space
