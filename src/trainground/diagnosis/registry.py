"""Checks registered by name: ``@register_check("dead_units", kind="training", requires=("layers",))``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Literal

from trainground.diagnosis.evidence import Evidence
from trainground.diagnosis.findings import CheckResult, Finding, Severity
from trainground.errors import ConfigError

CheckKind = Literal["training", "samples", "dataset"]
CheckFn = Callable[[Evidence], CheckResult]

_EVIDENCE_FIELDS = {f.name for f in fields(Evidence)} - {"extra"}


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its name, what it is about, what evidence it needs, and the function."""

    name: str
    kind: CheckKind
    requires: tuple[str, ...]
    fn: CheckFn
    description: str

    def runnable(self, evidence: Evidence) -> bool:
        return set(self.requires) <= evidence.available()


_REGISTRY: dict[str, CheckSpec] = {}


def register_check(name: str, *, kind: CheckKind, requires: Iterable[str] = ()) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn(evidence) -> CheckResult`` under ``name``; its docstring's first line describes it."""
    requires = tuple(requires)
    unknown = set(requires) - _EVIDENCE_FIELDS
    if unknown:
        raise ValueError(f"check {name!r} requires unknown evidence {sorted(unknown)}; known: {sorted(_EVIDENCE_FIELDS)}")

    def decorate(fn: CheckFn) -> CheckFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a check named {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = CheckSpec(name, kind, requires, fn, doc[0] if doc else "")
        return fn

    return decorate


def _load_builtin_checks() -> None:
    # Importing the package registers every built-in check (one module per check).
    import trainground.diagnosis.checks  # noqa: F401


def get_check(name: str) -> CheckSpec:
    """The check registered as ``name``; an unknown name raises ``ConfigError`` listing the known ones."""
    _load_builtin_checks()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown check {name!r}; known checks: {', '.join(sorted(_REGISTRY))}") from None


def available_checks(kind: CheckKind | None = None) -> list[CheckSpec]:
    """Registered checks (of one kind, when given), sorted by name."""
    _load_builtin_checks()
    return [spec for name, spec in sorted(_REGISTRY.items()) if kind is None or spec.kind == kind]


def run_checks(
    evidence: Evidence, names: Iterable[str] | None = None, *, kind: CheckKind | None = None,
) -> tuple[list[CheckResult], list[str]]:
    """Run the named checks (all of ``kind`` when ``names`` is None) on ``evidence``.

    Returns:
        the results of the checks that ran, and the names of those skipped because the
        evidence they require is missing.
    """
    specs = [get_check(n) for n in names] if names is not None else available_checks(kind)
    results, skipped = [], []
    for spec in specs:
        if spec.runnable(evidence):
            results.append(run_check(spec, evidence))
        else:
            skipped.append(spec.name)
    return results, skipped


def run_check(spec: CheckSpec, evidence: Evidence, *, step: int | None = None) -> CheckResult:
    """``spec.fn(evidence)``; a check that raises becomes an INFO finding naming the error.

    A diagnostic bug must never stop the user's training nor hide the other checks'
    conclusions; the finding says which check failed and why, so it is not silent either.
    """
    try:
        return spec.fn(evidence)
    except Exception as err:  # noqa: BLE001  (on purpose: the docstring says why)
        return CheckResult(check=spec.name, findings=[Finding(
            spec.name, Severity.INFO, "run", f"check {spec.name} failed: {err!r}", step=step,
            suggestion="report this as a bug of trainground, with the run directory",
        )])
