"""What a study comes to: ``summary.json``, ``best_config.yaml`` and the tune page.

Read from the storage, so any worker can write them and the last one to finish has the
whole study in them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from trainground.engine.atomic import atomic_write_text
from trainground.engine.run_config import RunConfig
from trainground.jsonsafe import json_safe
from trainground.tune.space import ParamSpec, apply, decode_params

SUMMARY_FILE, BEST_CONFIG_FILE, PAGE_FILE = "summary.json", "best_config.yaml", "report.html"


def study_summary(study: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Trials per state, pruned trials per reason, compute spent, and the best trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    reasons = Counter(str(t.user_attrs.get("pruned_reason", "pruner")) for t in trials
                      if t.state == TrialState.PRUNED)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    summary: dict[str, Any] = {
        "study": study.study_name, "trials": len(trials), "states": dict(states),
        "pruned_by_reason": dict(reasons),
        "compute": {"epochs": int(sum(t.user_attrs.get("epochs", 0) for t in done)),
                    "steps": int(sum(t.user_attrs.get("steps", 0) for t in done)),
                    "seconds": round(float(sum(t.user_attrs.get("seconds", 0.0) for t in done)), 2)},
        "numbers": sorted(t.number for t in trials),
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: t.value)
        summary["best"] = {"number": best.number, "value": best.value,
                           "params": decode_params(space, best.params), "run_dir": best.user_attrs.get("run_dir")}
    return summary


def best_config(base: dict[str, Any], space: dict[str, ParamSpec], params: dict[str, Any]) -> dict[str, Any]:
    """The best trial's config as a YAML dict ``fit --config`` and ``diagnose --config`` accept.

    ``diagnose`` refuses a ``loss`` section and ``data.test_fraction`` / ``data.noise``: they
    are left out when they hold their defaults (a tuned loss keeps its section; such a file
    is for ``fit``).
    """
    values = apply(base, decode_params(space, params), where="best trial").to_dict()
    defaults = RunConfig().to_dict()
    values.pop("logging", None)
    if values.get("loss") == defaults["loss"]:
        values.pop("loss")
    data = values.get("data", {})
    for key in ("test_fraction", "noise"):
        if data.get(key) == defaults["data"][key]:
            data.pop(key, None)
    return values


def write_outputs(study: Any, out: Path, *, base: dict[str, Any], space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Write ``summary.json``, ``best_config.yaml`` (when a trial completed) and ``report.html``."""
    from trainground.tune.page import render_tune_page

    summary = study_summary(study, space)
    atomic_write_text(out / SUMMARY_FILE, json.dumps(json_safe(summary), indent=1))
    if "best" in summary:
        config = best_config(base, space, study.best_trial.params)
        atomic_write_text(out / BEST_CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(out / PAGE_FILE, render_tune_page(study, summary))
    return summary


def print_tune_summary(summary: dict[str, Any], out: Path, *, data: str, metric: str, console: Any) -> None:
    """The study in a few lines: trials per state, pruned per reason, the best trial, where to look."""
    def say(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    say(f"{summary['trials']} trials in study {summary['study']}: "
        + ", ".join(f"{n} {k}" for k, n in summary["states"].items()))
    if summary["pruned_by_reason"]:
        say("pruned by reason: " + ", ".join(f"{k} {n}" for k, n in summary["pruned_by_reason"].items()))
    if "best" in summary:
        say(f"best: trial {summary['best']['number']}, {metric} {summary['best']['value']:.4f}")
        say(f"use it: trainground fit {data} --config {out / BEST_CONFIG_FILE}")
    say(f"report: {out / PAGE_FILE}")
