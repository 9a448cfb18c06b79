"""The search space: which options of ``config.yaml`` a trial samples, and from what.

A space is a mapping from a dotted key of the run config (``fit.lr``, ``model.hidden``,
``guard.percentile``, ``loss.label_smoothing``) to a :class:`ParamSpec`. In YAML::

    space:
      fit.lr: {kind: float, low: 1.0e-5, high: 1.0, log: true}
      fit.optimizer: {kind: categorical, choices: [adam, adamw, sgd]}
      model.hidden: {kind: categorical, choices: [[64], [128, 128]]}

Categorical choices may be lists or null; Optuna stores them as their JSON text (it only
keeps scalars), and the trial's config gets the decoded value back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from trainground.engine.config_io import from_dict
from trainground.engine.run_config import RunConfig
from trainground.errors import ConfigError

SECTIONS = ("data", "model", "fit", "loss", "guard")


@dataclass
class ParamSpec:
    """One searched option."""

    # "float" and "int" take [low, high] (log: sample the exponent); "categorical" takes choices.
    kind: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    # Sample uniformly in log space: right for learning rates and weight decay (scales, not offsets).
    log: bool = False
    # Grid step of an int/float range (None: continuous / every integer).
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, where: str) -> None:
        if self.kind == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ConfigError(f"{where}: a {self.kind} parameter needs low < high, got low={self.low} high={self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: log: true needs low > 0, got {self.low}")

    def suggest(self, trial: Any, name: str) -> Any:
        """The value Optuna's ``trial`` draws for this parameter (decoded for categoricals)."""
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in self.choices]))


def default_space() -> dict[str, ParamSpec]:
    """The space ``trainground tune`` searches when the YAML gives none.

    Ranges are wide on purpose (a user who tunes does not know the right scale): lr over five
    decades, Adam/AdamW/SGD, three widths, weight decay over four decades, the Guard's
    percentile clipping and spike skip on or off, label smoothing up to 0.2. Part of this
    space diverges or kills the network, which is what diagnosis-aware pruning is for.
    """
    return {
        "fit.lr": ParamSpec("float", 1e-5, 1.0, log=True),
        "fit.batch_size": ParamSpec("categorical", choices=[32, 64, 128]),
        "fit.optimizer": ParamSpec("categorical", choices=["adam", "adamw", "sgd"]),
        "fit.weight_decay": ParamSpec("float", 1e-6, 1e-2, log=True),
        "model.hidden": ParamSpec("categorical", choices=[[64], [128, 128], [256, 256]]),
        "guard.percentile": ParamSpec("categorical", choices=[None, 10.0]),
        "guard.spike_z": ParamSpec("categorical", choices=[None, 6.0]),
        "loss.label_smoothing": ParamSpec("float", 0.0, 0.2),
    }


def parse_space(values: Any, where: str) -> dict[str, ParamSpec]:
    """A space from its YAML mapping; keys must name options of ``config.yaml``."""
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{where}: expected a non-empty mapping of 'section.option' to a parameter")
    space = {}
    for key, spec_values in values.items():
        spec = from_dict(ParamSpec, spec_values, f"{where}.{key}")
        spec.check(f"{where}.{key}")
        _check_key(str(key), f"{where}.{key}")
        space[str(key)] = spec
    return space


def _check_key(key: str, where: str) -> None:
    section, _, option = key.partition(".")
    if section not in SECTIONS or not option or "." in option:
        raise ConfigError(f"{where}: expected 'section.option' with section one of {', '.join(SECTIONS)}")
    known = RunConfig().to_dict()[section]
    if option not in known:
        raise ConfigError(f"{where}: {section} has no option {option!r}; known: {', '.join(known)}")


def space_to_dict(space: dict[str, ParamSpec]) -> dict[str, dict[str, Any]]:
    """The YAML/JSON form of ``space`` (only the fields that matter for each kind)."""
    out = {}
    for key, spec in space.items():
        if spec.kind == "categorical":
            out[key] = {"kind": spec.kind, "choices": list(spec.choices)}
        else:
            out[key] = {"kind": spec.kind, "low": spec.low, "high": spec.high, "log": spec.log, "step": spec.step}
    return out


def sample(space: dict[str, ParamSpec], trial: Any) -> dict[str, Any]:
    """One value per parameter, drawn by ``trial`` (keyed by the dotted config key)."""
    return {key: spec.suggest(trial, key) for key, spec in space.items()}


def apply(base: dict[str, Any], values: dict[str, Any], where: str = "trial") -> RunConfig:
    """The run config ``base`` (a ``config.yaml`` dict) with ``values`` set, checked like a YAML."""
    merged = {section: dict(base.get(section) or {}) for section in base}
    for key, value in values.items():
        section, _, option = key.partition(".")
        merged.setdefault(section, {})[option] = value
    return RunConfig.from_dict(merged, where=where)


def decode_params(space: dict[str, ParamSpec], params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored params (categoricals as JSON text) as config values."""
    return {k: json.loads(v) if k in space and space[k].kind == "categorical" and isinstance(v, str) else v
            for k, v in params.items()}
