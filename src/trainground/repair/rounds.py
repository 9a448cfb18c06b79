"""The round runner every repair uses: train, let the policies plan, train again, keep by one rule.

The kinds of repair differ only in the :class:`Trainer` they plug in:

- data rounds (``repair.loop``): a round is a dataset diagnosis; data and training actions
  change the repaired data and the next round's plan;
- training rounds (``repair.training``): a round is a ``fit`` with the training diagnosis,
  resumable from a checkpoint; training actions change the plan;
- multi-task rounds (``repair.multitask``): a round is a multi-task training; the
  ``task_weights`` policy changes the loss weights.

:func:`run_rounds` trains round 0, then repeatedly asks the trainer to plan the next round
from the last one (run the policies, apply their actions), stops when nothing is planned,
records every applied action (``actions.jsonl``, ``step`` = the round that trained with it),
trains the round, and keeps it only when :func:`~trainground.repair.selection.keep_best`
finds it significantly better than the round kept so far on the same validation rows (or,
for a round of label edits, not worse than round 0 and the kept round by more than the
margin); the first round that is not kept ends the loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from trainground.gradients import ActionLog
from trainground.repair.actions import Action
from trainground.repair.selection import keep_best


@dataclass
class RoundOutcome:
    """One trained round.

    Attributes:
        scores: ``[N]`` per validation row, 1 when the round's model gets it right (the mean
            over the tasks with several); the keep rule reads only these.
        metrics: the round's ``metrics.json`` entry (the runner adds ``actions`` and ``comparison``).
        payload: whatever the trainer needs to plan the next round or to build its result.
    """

    scores: np.ndarray
    metrics: dict[str, Any]
    payload: Any = None


@dataclass
class Planned:
    """What a trainer planned for the next round.

    Attributes:
        actions: the actions applied (each a real change), in order.
        notes: added to the planned-from round's ``metrics.json`` entry (policies skipped,
            relabels declined, the class-share cap).
        nothing: why nothing was planned (the loop's ``stopped``) when ``actions`` is empty.
        label_edits: the actions include relabels made under the competence gate and the
            class-share cap: the round may also be kept when it is not worse than round 0
            (``selection.keep_best``'s non-inferiority rule).
    """

    actions: list[Action]
    notes: dict[str, Any] = field(default_factory=dict)
    nothing: str = ""
    label_edits: bool = False


class Trainer(Protocol):
    """A kind of repair: trains a round with its current state and plans the next one."""

    def train(self, k: int) -> RoundOutcome:
        """Train round ``k`` with the state the last :meth:`plan` left (round 0: as given)."""
        ...

    def plan(self, k: int, last: RoundOutcome) -> Planned:
        """Run the policies on ``last`` and apply their actions: the state round ``k`` trains with."""
        ...


@dataclass
class Rounds:
    """What :func:`run_rounds` returns: every trained round, the kept one, why the loop stopped,
    and ``(round, action)`` of every applied action (rejected rounds included)."""

    outcomes: list[RoundOutcome]
    best: int
    stopped: str
    actions: list[tuple[int, Action]]


def run_rounds(trainer: Trainer, *, max_rounds: int, log: ActionLog | None = None,
               say: Callable[[str], None] | None = None) -> Rounds:
    """Train round 0 and up to ``max_rounds`` repaired rounds; keep by :func:`keep_best`."""
    say = say or (lambda message: None)
    outcomes = [trainer.train(0)]
    outcomes[0].metrics.setdefault("comparison", None)
    applied: list[tuple[int, Action]] = []
    best, stopped = 0, f"reached the maximum of {max_rounds} repair rounds"
    for k in range(1, max_rounds + 1):
        planned = trainer.plan(k, outcomes[-1])
        outcomes[-1].metrics.update(planned.notes)
        if not planned.actions:
            stopped = planned.nothing or f"round {k - 1}'s findings left nothing to repair"
            break
        for action in planned.actions:
            applied.append((k, action))
            if log is not None:
                log.append(action.record(k))
        outcome = trainer.train(k)
        outcome.metrics["actions"] = dict(Counter(a.action for a in planned.actions))
        outcomes.append(outcome)
        previous = best
        best, comparison = keep_best([o.scores for o in outcomes], best, label_edits=planned.label_edits)
        outcome.metrics["comparison"] = {"against": previous, **comparison.to_json()}
        say(f"  round {k} against round {previous}: {comparison.describe()}")
        if best != k:
            stopped = f"round {k} against round {previous}: {comparison.describe()}; kept round {best}"
            break
    return Rounds(outcomes, best, stopped, applied)
