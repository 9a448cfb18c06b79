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
# What a loop can give a policy beyond the findings (every loop gives findings):
#   samples         the sample table and out-of-sample probabilities of a dataset diagnosis
#   validation      the round's model measured on the frozen validation split (``competence``)
#   checkpoints     rounds resumable from a checkpoint (``extra["resumable"]``, ``extra["train_index"]``)
#   unit_activity   per-unit activity of the layers a check found dead (``extra["dead_unit_ids"]``)
#   task_gradients  per-task gradient norms on the shared parameters (``extra["task_grad_norms"]``)
Requirement = Literal["samples", "validation", "checkpoints", "unit_activity", "task_gradients"]


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
        competence: the round's model on the frozen validation split
            (:class:`~trainground.repair.competence.Competence`), or None.
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
    competence: Any = None

    def evidence(self) -> set[str]:
        """The :data:`Requirement` names this context can satisfy."""
        have = set()
        if self.table is not None and "is_label_issue" in self.table and self.pred_probs is not None:
            have.add("samples")
        if self.competence is not None:
            have.add("validation")
        if self.extra.get("resumable"):
            have.add("checkpoints")
        if "dead_unit_ids" in self.extra:
            have.add("unit_activity")
        if "task_grad_norms" in self.extra:
            have.add("task_gradients")
        return have

    def findings_of(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]


PolicyFn = Callable[[RepairContext], list[Action]]


@dataclass(frozen=True)
class PolicySpec:
    """A registered policy: name, whether it changes data or training, the function, what it reads."""

    name: str
    kind: PolicyKind
    fn: PolicyFn
    description: str
    requires: tuple[Requirement, ...] = ()


_REGISTRY: dict[str, PolicySpec] = {}


def register_policy(name: str, *, kind: PolicyKind, requires: Sequence[Requirement] = ()
                    ) -> Callable[[PolicyFn], PolicyFn]:
    """Register ``fn(context) -> list[Action]`` under ``name``; its docstring's first line describes it.

    ``requires`` names the evidence beyond the findings the policy reads (:data:`Requirement`);
    a loop that cannot give it reports the policy as skipped instead of running it.
    """

    def decorate(fn: PolicyFn) -> PolicyFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a policy named {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = PolicySpec(name, kind, fn, doc[0] if doc else "", tuple(requires))
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
    """Run the named policies (all registered ones of ``kind`` by default) and concatenate their actions.

    A policy whose ``requires`` the context cannot satisfy is not run (see :func:`run_policies_reporting`).
    """
    return run_policies_reporting(context, names, kind=kind)[0]


def run_policies_reporting(context: RepairContext, names: Iterable[str] | None = None, *,
                           kind: PolicyKind | None = None) -> tuple[list[Action], dict[str, str]]:
    """:func:`run_policies`, also returning ``{policy: why it was skipped}`` for the policies that
    could not act in this loop (the evidence they need is missing), so a loop can report them."""
    specs = [get_policy(n) for n in names] if names is not None else available_policies(kind)
    have = context.evidence()
    actions: list[Action] = []
    skipped: dict[str, str] = {}
    for spec in specs:
        if kind is not None and spec.kind != kind:
            continue
        missing = [r for r in spec.requires if r not in have]
        if missing:
            skipped[spec.name] = f"needs {', '.join(missing)}, which this repair loop does not provide"
            continue
        actions.extend(spec.fn(context))
    return actions, skipped
