"""Policies registered by name: ``@register_policy("relabel", kind="data")``.

A policy reads a :class:`RepairContext` (the findings and sample table of the last
diagnosis, the data and the configuration of the last round) and returns a list of
:class:`~trainground.repair.actions.Action`. Detection never acts; policies never detect:
a policy only reads what the checks found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from trainground.data import IndexedDataset
from trainground.diagnosis import Finding
from trainground.errors import ConfigError
from trainground.repair.actions import Action

PolicyKind = Literal["data", "training"]


@dataclass
class RepairContext:
    """What a policy may read about the round just diagnosed.

    Args:
        round: the round whose diagnosis this is (0: the original data).
        data: the training data as that round saw it (labels after earlier relabels,
            quarantined samples removed).
        findings: run, layer and dataset findings of the diagnosis.
        table: the ``sample_issues.csv`` table (labels decoded to the user's values), one
            row per sample of ``data``, or None when the round recorded no samples.
        pred_probs: ``[N, C]`` out-of-sample-ish probabilities the sample checks used, rows
            in ``data``'s order, or None.
        history: the metrics of every earlier round (``metrics.json``'s ``rounds``).
        config: the round's ``RunConfig`` (fit, model, loss, guard).
        run_dir: the round's run directory (``metrics.jsonl``, ``findings.json``, checkpoints),
            or None when it was kept in memory.
        extra: anything else a policy needs (documented by whoever puts it there).
    """

    round: int
    data: IndexedDataset
    findings: Sequence[Finding] = ()
    table: pd.DataFrame | None = None
    pred_probs: np.ndarray | None = None
    history: Sequence[dict[str, Any]] = ()
    config: Any = None
    run_dir: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def findings_of(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]


PolicyFn = Callable[[RepairContext], list[Action]]


@dataclass(frozen=True)
class PolicySpec:
    """A registered policy: name, whether it changes data or training, the function."""

    name: str
    kind: PolicyKind
    fn: PolicyFn
    description: str


_REGISTRY: dict[str, PolicySpec] = {}


def register_policy(name: str, *, kind: PolicyKind) -> Callable[[PolicyFn], PolicyFn]:
    """Register ``fn(context) -> list[Action]`` under ``name``; its docstring's first line describes it."""

    def decorate(fn: PolicyFn) -> PolicyFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a policy named {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = PolicySpec(name, kind, fn, doc[0] if doc else "")
        return fn

    return decorate


def _load_builtin_policies() -> None:
    # Importing the package registers every built-in policy (one module per policy).
    import trainground.repair.policies  # noqa: F401


def get_policy(name: str) -> PolicySpec:
    """The policy registered as ``name``; an unknown name raises ``ConfigError`` listing the known ones."""
    _load_builtin_policies()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown repair policy {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def available_policies(kind: PolicyKind | None = None) -> list[PolicySpec]:
    """Registered policies, by name, optionally only those of one kind."""
    _load_builtin_policies()
    return [spec for _, spec in sorted(_REGISTRY.items()) if kind is None or spec.kind == kind]


def run_policies(context: RepairContext, names: Iterable[str] | None = None, *,
                 kind: PolicyKind | None = None) -> list[Action]:
    """Run the named policies (all registered ones of ``kind`` by default) and concatenate their actions."""
    specs = [get_policy(n) for n in names] if names is not None else available_policies(kind)
    actions: list[Action] = []
    for spec in specs:
        if kind is not None and spec.kind != kind:
            continue
        actions.extend(spec.fn(context))
    return actions
