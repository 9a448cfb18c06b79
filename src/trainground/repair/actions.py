"""Actions: what a repair policy decides (relabel sample i, set the learning rate, ...), as data.

A policy never changes anything itself: it returns :class:`Action` objects, and the repair
loop applies them and writes each one to ``actions.jsonl`` (through
:class:`~trainground.gradients.ActionLog`, the same writer the Guard uses), with the policy
that chose it, the reason and the evidence, so every change can be traced and undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from trainground.gradients.actions import action_record
from trainground.jsonsafe import json_safe

ActionKind = Literal[
    # data: about samples or classes
    "relabel",          # target: sample input index; value: new class id
    "quarantine",       # target: sample input index; excluded from training, listed, never lost
    "reweight",         # target: sample input index; value: weight in [0, 1]
    "class_weights",    # target: None; value: list of per-class loss weights
    "drop_duplicate",   # target: sample input index; an exact duplicate with a conflicting label
    # training: about the run, a layer or a task
    "set_lr",           # target: None; value: new learning rate
    "tighten_clip",     # target: None; value: dict of Guard options to change
    "loosen_clip",      # target: None; value: dict of Guard options to change
    "rollback",         # target: checkpoint / step; value: dict (what to skip)
    "swap_activation",  # target: layer name; value: new activation name (e.g. "leaky_relu")
    "reinit_units",     # target: layer name; value: list of unit ids
    "task_weights",     # target: None; value: dict task -> weight
]
DATA_ACTIONS: frozenset[str] = frozenset({"relabel", "quarantine", "reweight", "class_weights", "drop_duplicate"})
TRAINING_ACTIONS: frozenset[str] = frozenset(get_args(ActionKind)) - DATA_ACTIONS


@dataclass(frozen=True)
class Action:
    """One change a policy asks for.

    Args:
        action: what to do (:data:`ActionKind`).
        policy: the registered name of the policy that chose it.
        reason: one sentence a user can read ("label 3 contradicts 9 of its 10 neighbours").
        target: the sample's input index, a layer or task name, or None for the whole run.
        value: the new value (class id, weight, learning rate, activation name, ...).
        score: how sure the evidence is, in [0, 1] (low = bad, as in ``CheckResult``), if any.
        evidence: the figures the decision rests on (JSON-serialisable).
    """

    action: ActionKind
    policy: str
    reason: str
    target: Any = None
    value: Any = None
    score: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in get_args(ActionKind):
            raise ValueError(f"unknown action {self.action!r}; known: {', '.join(get_args(ActionKind))}")

    @property
    def is_data(self) -> bool:
        return self.action in DATA_ACTIONS

    def record(self, round_: int) -> dict[str, Any]:
        """The ``actions.jsonl`` line (``step`` is the repair round)."""
        evidence = {**self.evidence, "policy": self.policy, "target": json_safe(self.target),
                    "value": json_safe(self.value), "score": self.score}
        return action_record(round_, self.action, self.reason, evidence)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Action:
        """Inverse of :meth:`record` (the round is not part of the action)."""
        evidence = dict(record.get("evidence") or {})
        policy = evidence.pop("policy", "")
        target, value, score = evidence.pop("target", None), evidence.pop("value", None), evidence.pop("score", None)
        return cls(record["action"], policy, record.get("reason", ""), target, value, score, evidence)

