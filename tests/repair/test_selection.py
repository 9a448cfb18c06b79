"""The keep rule's non-inferiority branch for label edits (``repair.selection``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from trainground.repair.actions import Action
from trainground.repair.rounds import Planned, RoundOutcome, run_rounds
from trainground.repair.selection import (
    MARGIN,
    REFERENCE,
    keep_best,
    non_inferior,
    tango_z,
)


def _pair(rows: int, wins: int, losses: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and new per-row scores with the given discordant counts (half the rest right)."""
    ref, new = np.zeros(rows), np.zeros(rows)
    new[:wins] = 1
    ref[wins:wins + losses] = 1
    both = (rows - wins - losses) // 2
    ref[wins + losses:wins + losses + both] = new[wins + losses:wins + losses + both] = 1
    return ref, new


def _z_by_numeric_mle(wins: int, losses: int, rows: int, margin: float) -> float:
    # Restricted MLE of P(ref right, new wrong) = x with P(new right, ref wrong) = x - margin.
    m = rows - wins - losses

    def nll(x: float) -> float:
        return -(losses * math.log(x) + wins * math.log(x - margin) + m * math.log(1 - 2 * x + margin))

    x = minimize_scalar(nll, bounds=(margin + 1e-12, (1 + margin) / 2 - 1e-12), method="bounded",
                        options={"xatol": 1e-12}).x
    return ((wins - losses) / rows + margin) / math.sqrt((2 * x - margin - margin ** 2) / rows)


@pytest.mark.parametrize("wins,losses,rows", [(5, 1, 144), (1, 3, 144), (19, 32, 400), (10, 10, 244), (0, 4, 144)])
def test_tango_score_statistic_matches_the_restricted_mle(wins, losses, rows):
    assert tango_z(wins, losses, rows, MARGIN) == pytest.approx(_z_by_numeric_mle(wins, losses, rows, MARGIN), rel=1e-5)


def test_no_discordant_row_needs_enough_rows_to_exclude_the_margin():
    # z = sqrt(n d / (1 - d)): 133 rows exclude a 2-point loss at the 5 % level, 100 rows do not.
    assert tango_z(0, 0, 144, 0.02) == pytest.approx(math.sqrt(144 * 0.02 / 0.98))
    assert non_inferior(*_pair(144, 0, 0)).holds
    assert not non_inferior(*_pair(100, 0, 0)).holds


def test_a_clear_loss_is_not_non_inferior_and_a_small_gain_is():
    assert not non_inferior(*_pair(400, 19, 32)).holds       # -13 of 400 rows: a 3.25-point loss
    assert non_inferior(*_pair(144, 5, 1)).holds             # +4 of 144, not significant, not worse
    assert not non_inferior(*_pair(144, 1, 6)).holds         # -5 of 144


def test_label_edits_are_kept_when_not_worse_other_rounds_only_when_better():
    ref, new = _pair(144, 5, 1)
    assert keep_best([ref, new], 0)[0] == 0                  # superiority alone: p = 0.11, round 0 kept
    best, comparison = keep_best([ref, new], 0, label_edits=True)
    assert best == 1 and comparison.keep and comparison.rule == "non-inferiority" and not comparison.better
    assert comparison.to_json()["non_inferiority"][0]["against"] == 0
    ref, worse = _pair(144, 1, 6)
    assert keep_best([ref, worse], 0, label_edits=True)[0] == 0


def test_non_inferiority_is_checked_against_round_0_too_so_margins_do_not_add_up():
    # Round 1 is 8 rows of 1000 below round 0 (kept as non-inferior); round 2 is 8 rows below
    # round 1, each step clearly within the 2-point margin, but together 16 rows below round 0.
    r0 = np.r_[np.ones(700), np.zeros(300)]
    r1 = r0.copy()
    r1[:8] = 0
    r2 = r1.copy()
    r2[8:16] = 0
    assert keep_best([r0, r1], 0, label_edits=True)[0] == 1
    best, comparison = keep_best([r0, r1, r2], 1, label_edits=True)
    assert [t.against for t in comparison.non_inferiority] == [0, 1]
    assert comparison.non_inferiority[1].holds and not comparison.non_inferiority[0].holds and best == 1


class _Scripted:
    """A trainer whose rounds have fixed validation scores; round 1 is a round of label edits."""

    def __init__(self, scores: list[np.ndarray], label_edits: bool) -> None:
        self.scores, self.label_edits = scores, label_edits

    def train(self, k: int) -> RoundOutcome:
        return RoundOutcome(self.scores[k], {"round": k})

    def plan(self, k: int, last: RoundOutcome) -> Planned:
        if k >= len(self.scores):
            return Planned([])
        return Planned([Action("relabel", "relabel", "test", target=0, value=1)], label_edits=self.label_edits)


def test_the_round_runner_passes_the_label_edit_flag_to_the_keep_rule():
    ref, new = _pair(144, 5, 1)
    assert run_rounds(_Scripted([ref, new], label_edits=True), max_rounds=1).best == 1
    rounds = run_rounds(_Scripted([ref, new], label_edits=False), max_rounds=1)
    assert rounds.best == 0 and rounds.outcomes[1].metrics["comparison"]["rule"] == "none"


# The keep rule compares like with like: a reference round (no edit, trained as the repair
# rounds are) stands in for round 0; when nothing is kept the output stays round 0.

def _three(rows: int = 144) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round 0, the reference round and round 1 on ``rows`` frozen rows: round 0 gets rows 0-9
    right that the reference misses (its head start); round 1 adds rows 10-20 to the reference's
    (significant: +11 / -0, p = 0.0005) but loses rows 0-9 against round 0 (+11 / -10, p = 0.5)."""
    base = np.zeros(rows)
    base[100:] = 1
    r0, ref = base.copy(), base.copy()
    r0[:10] = 1
    r1 = ref.copy()
    r1[10:21] = 1
    return r0, ref, r1


def test_a_round_better_than_the_reference_but_not_than_round_0_is_kept():
    r0, ref, r1 = _three()
    assert keep_best([r0, r1], 0)[0] == 0                    # against round 0: +11 / -10, not better
    best, comparison = keep_best([r0, r1], 0, reference=ref)
    assert best == 1 and comparison.better and (comparison.wins, comparison.losses) == (11, 0)


def test_a_round_better_than_neither_leaves_round_0_as_the_output():
    r0, ref, _ = _three()
    r1 = ref.copy()
    r1[10:13] = 1                                             # +3 / -0 against the reference: p = 0.125
    assert keep_best([r0, r1], 0, reference=ref)[0] == 0
    rounds = run_rounds(_WithReference([r0, r1], ref), max_rounds=1)
    assert rounds.best == 0 and rounds.reference is not None
    assert rounds.outcomes[1].metrics["comparison"]["against"] == REFERENCE


def test_label_edits_are_judged_non_inferior_against_the_reference_not_round_0():
    r0, ref, _ = _three()
    r1 = ref.copy()
    r1[10:12] = 1                                             # +2 / -0 against the reference, -8 against round 0
    best, comparison = keep_best([r0, r1], 0, label_edits=True, reference=ref)
    assert best == 1 and [t.against for t in comparison.non_inferiority] == [REFERENCE]
    assert keep_best([r0, r1], 0, label_edits=True)[0] == 0   # against round 0 (-10 / +2 of 144) it fails
    # A later round: against the kept round and the reference, never round 0.
    r2 = r1.copy()
    best, comparison = keep_best([r0, r1, r2], 1, label_edits=True, reference=ref)
    assert [t.against for t in comparison.non_inferiority] == [REFERENCE, 1] and best == 2


class _WithReference(_Scripted):
    """A scripted trainer that also trains a reference round, counting how often."""

    def __init__(self, scores: list[np.ndarray], reference: np.ndarray) -> None:
        super().__init__(scores, label_edits=False)
        self.reference_scores, self.references = reference, 0

    def reference(self) -> RoundOutcome:
        self.references += 1
        return RoundOutcome(self.reference_scores, {"role": "reference"})


def test_the_runner_trains_the_reference_once_and_only_when_a_repair_round_is_trained():
    r0, ref, r1 = _three()
    r2 = r1.copy()
    r2[21:40] = 1                                             # round 2 significantly better than round 1
    trainer = _WithReference([r0, r1, r2], ref)
    rounds = run_rounds(trainer, max_rounds=3)
    assert trainer.references == 1 and rounds.best == 2
    assert [o.metrics["comparison"]["against"] for o in rounds.outcomes[1:]] == [REFERENCE, 1]
    idle = _WithReference([r0], ref)                          # nothing to repair: no extra training
    assert run_rounds(idle, max_rounds=3).reference is None and idle.references == 0
