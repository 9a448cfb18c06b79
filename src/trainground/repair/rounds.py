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

**The keep rule compares like with like.** Round 0 is trained as a diagnosis is (for data
repairs: early stopping on the frozen validation rows that later judge every round, and a
larger training share), the repair rounds are not; a repair round with no edit at all
starts behind round 0 on those rows (benchmark B, digits: -1.5 frozen-row points,
``benchmarks/round0_head_start.py``). A trainer that trains its repair rounds differently
from round 0 therefore provides ``reference()``: a round with *no* edit trained exactly as
the repair rounds are (same training share, own validation split, same seed). The runner
trains it once, just before the first repair round (one extra training per repair, only
when something is to be repaired), and every comparison that would read round 0 reads the
reference round instead. When no round is kept, the output is still round 0 (the best
no-edit model: nothing of the user's gets worse); round 0's diagnosis, which plans round 1,
is unchanged. Trainers without ``reference()`` compare with round 0 as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from trainground.gradients import ActionLog
from trainground.repair.actions import Action
from trainground.repair.selection import REFERENCE, keep_best, round_name


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
    and ``(round, action)`` of every applied action (rejected rounds included); ``reference`` is
    the reference round (the comparator in place of round 0), None when none was trained."""

    outcomes: list[RoundOutcome]
    best: int
    stopped: str
    actions: list[tuple[int, Action]]
    reference: RoundOutcome | None = None


def run_rounds(trainer: Trainer, *, max_rounds: int, log: ActionLog | None = None,
               say: Callable[[str], None] | None = None) -> Rounds:
    """Train round 0 and up to ``max_rounds`` repaired rounds; keep by :func:`keep_best`.

    When the trainer has ``reference()`` (see the module docstring), the reference round is
    trained before the first repair round and is the comparator wherever round 0 would be.
    """
    say = say or (lambda message: None)
    outcomes = [trainer.train(0)]
    outcomes[0].metrics.setdefault("comparison", None)
    applied: list[tuple[int, Action]] = []
    best, stopped = 0, f"reached the maximum of {max_rounds} repair rounds"
    train_reference = getattr(trainer, "reference", None)
    reference: RoundOutcome | None = None
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
        if reference is None and train_reference is not None:
            reference = train_reference()
        outcome = trainer.train(k)
        outcome.metrics["actions"] = dict(Counter(a.action for a in planned.actions))
        outcomes.append(outcome)
        previous = best
        best, comparison = keep_best([o.scores for o in outcomes], best, label_edits=planned.label_edits,
                                     reference=None if reference is None else reference.scores)
        against = REFERENCE if previous == 0 and reference is not None else previous
        outcome.metrics["comparison"] = {"against": against, **comparison.to_json()}
        say(f"  round {k} against {round_name(against)}: {comparison.describe()}")
        if best != k:
            stopped = f"round {k} against {round_name(against)}: {comparison.describe()}; kept round {best}"
            break
    return Rounds(outcomes, best, stopped, applied, reference)
