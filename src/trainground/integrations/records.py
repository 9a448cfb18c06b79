"""What the loggers publish: ``metrics.jsonl``'s records as named scalars, the run's config as parameters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

import yaml

from trainground.engine.metrics import read_metrics
from trainground.engine.state import TrainState

# Record fields that locate a value (the x axis) rather than being one.
_NOT_SCALARS = frozenset({"kind", "step", "epoch"})
# Config sections not published as parameters: ``logging`` is where the scalars go (a tracking
# URI may carry credentials), not how the model was trained.
_PRIVATE_SECTIONS = frozenset({"logging"})


def scalars(record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """``(tag, value)`` of every scalar in one ``metrics.jsonl`` record.

    Tags are ``<kind>/<key>``: ``step/loss``, ``step/grad_norm``, ``epoch/val_accuracy``.
    ``None`` (a non-finite value, as the file writes it) is skipped, so a logger holds
    exactly what the file holds.
    """
    kind = record["kind"]
    for key, value in record.items():
        if key in _NOT_SCALARS or value is None or isinstance(value, (str, bool)):
            continue
        yield f"{kind}/{key}", float(value)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as one level, ``{"fit.lr": 0.001, "guard.clip": "zscore", ...}``.

    Lists become their string form and ``None`` the string ``"None"`` (trackers take scalars
    and strings only).
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def run_params(state: TrainState) -> dict[str, Any]:
    """The run's configuration, flattened: the run directory's ``config.yaml`` when there is
    one (everything the CLI or ``run_fit`` was asked), else the loop's and the Guard's options."""
    config: dict[str, Any]
    if state.run_dir is not None and state.run_dir.config.is_file():
        with open(state.run_dir.config, encoding="utf-8") as fh:
            config = yaml.safe_load(fh) or {}
    else:
        config = {"fit": asdict(state.config)}
        guard_config = getattr(state.guard, "config", None)
        if guard_config is not None:
            config["guard"] = asdict(guard_config)
    return flatten({k: v for k, v in config.items() if k not in _PRIVATE_SECTIONS})


def records_before(state: TrainState) -> list[dict[str, Any]]:
    """The step and epoch records of the steps before this fit started: none on a fresh run;
    on a resume, the run's ``metrics.jsonl``, which the metrics writer has just cut back to the
    checkpoint. A logger that joins a run on resume (no state of its own in the checkpoint)
    replays them, so its series has no hole."""
    if state.step == 0 or state.run_dir is None or not state.run_dir.metrics.is_file():
        return []
    return [r for r in read_metrics(state.run_dir.metrics) if r.get("kind") in ("step", "epoch")]
