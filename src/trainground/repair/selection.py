"""Which repair round to keep: one rule for every kind of repair (data, training, multi-task).

**Superiority (every round).** A later round replaces the kept one when it is
*significantly* better on the same validation rows, by a paired test fixed before any run:

- Each validation row gets a score per round: 1 if the round's model classifies it
  correctly, else 0 (with several tasks, the mean over the tasks).
- Rows on which the two rounds agree carry no evidence. On the others the exact one-sided
  sign test asks whether the new round wins more rows than a fair coin would give it:
  ``p = P(Binomial(wins + losses, 1/2) >= wins)``. With one task this is the exact
  McNemar test (McNemar 1947; Edwards 1948 for the exact form).
- The new round is kept when ``p < ALPHA`` (one-sided 0.05, the conventional level). A tie
  or a non-significant gain keeps the earlier round: a repair must earn its changes, since
  on a few hundred validation rows +4 rows is what chance gives (issue 14: +4 of 244 is
  p ~ 0.2), and keeping the original data is the safe default.

**Non-inferiority (label edits only).** A round whose changes include relabels is also kept
when it is shown *not worse* than round 0 (and than the round kept so far) by more than
:data:`MARGIN`, by Tango's score test for paired proportions at the same one-sided level.
Why a second rule, and why only there:

- The validation labels are as noisy as the training labels and are never repaired (see
  ``repair.loop``). A model trained on corrected labels is judged against the wrong labels
  it no longer reproduces; under asymmetric noise (a class systematically filed as
  another) round 0's model learns part of the flip and *gains* validation rows from it. So
  a real improvement can show as a tie on the frozen split, and on a split of a
  hundred-odd rows, where two good models disagree on a handful of rows, superiority is
  out of reach whatever the repair did (benchmark B, digits: 0-7 discordant rows of 144).
  Demanding it there throws away label corrections that are 95-98 % right.
- A relabel is only made where the evidence is strong and bounded by rules fixed before
  any run: confident learning flagged the label, the suggested class holds the majority of
  the early-learning probability (``policies/_evidence``), the model is competent
  (``repair.competence``: skill over the majority baseline >= 1/2, precision of the new
  class > 1/2), and no class loses more than a quarter of its mass (``class_share``).
  The decision to change labels therefore rests on that evidence, and the validation split
  only has to show that the change did no harm; that is the question a non-inferiority
  test answers. Quarantine, reweighting and training actions have weaker or no per-row
  evidence and must still earn their place by superiority. On a hard table the competence
  gate declines every relabel, so there a repair keeps round 0 or a significantly better
  round, as before.
- The margin is fixed a priori at 2 accuracy points: the spread that retraining the same
  recipe with another seed gives on its own (the seed-to-seed standard deviation of test
  accuracy of one unchanged recipe is 0.4-1.9 points on the anchor benchmarks' plain
  rows), so a loss below it is not a harm one could attribute to the repair. It is
  compared against round 0 itself as well as against the kept round, so margins never
  add up over rounds.
- Tango's score test (the restricted maximum-likelihood variance under the null
  ``p_new - p_kept = -MARGIN``) is the standard test of a difference of paired
  proportions; unlike a Wald test it does not collapse when no row is discordant (then
  ``z = sqrt(n * MARGIN / (1 - MARGIN))``: with no disagreement at all, non-inferiority
  still needs enough rows to exclude a 2-point loss, 133 of them).

**Like with like.** For data repairs, "round 0" in the rules above is the *reference
round* (``keep_best(..., reference=...)``, ``repair.rounds``): a round with no edit trained
exactly as the repair rounds are. Round 0 itself early-stops on the frozen rows that judge
it and trains on a larger share, a head start of about 1.5 points on those rows before any
edit (``benchmarks/round0_head_start.py``), as large as the margin; comparing a repair
round with it would charge that head start to the edits. Round 0 stays the output when no
round is kept.

The paired tests use the rows both models saw, so they are much more sensitive than
comparing two accuracies as if they came from different samples.

References:
    McNemar, "Note on the sampling error of the difference between correlated proportions
    or percentages", Psychometrika 1947;
    Dietterich, "Approximate Statistical Tests for Comparing Supervised Classification
    Learning Algorithms", Neural Computation 1998 (McNemar for comparing two classifiers);
    Tango, "Equivalence test and confidence interval for the difference in proportions for
    the paired-sample design", Statistics in Medicine 1998;
    Wellek, "Testing Statistical Hypotheses of Equivalence and Noninferiority", 2010.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

# One-sided level of both paired tests, fixed a priori (not tuned on any benchmark).
ALPHA = 0.05
# Non-inferiority margin in accuracy (a fraction of the validation rows), fixed a priori:
# the seed-to-seed spread of one unchanged recipe (see the module docstring).
MARGIN = 0.02
# How the comparisons name the reference round (a no-edit round trained as the repair rounds are).
REFERENCE = -1


@dataclass(frozen=True)
class NonInferiority:
    """Tango's score test that a new round is not worse than a reference round by ``margin`` or more.

    Attributes:
        against: the reference round.
        wins, losses: rows only the new round / only the reference gets right.
        rows: validation rows.
        margin: the accuracy loss the null hypothesis claims (or more).
        z: the score statistic; ``p_value = 1 - Phi(z)``.
        holds: ``p_value < ALPHA``: a loss of ``margin`` or more is rejected.
    """

    against: int
    wins: int
    losses: int
    rows: int
    margin: float
    z: float
    p_value: float
    holds: bool

    def to_json(self) -> dict[str, float | int | bool]:
        return {"against": self.against, "wins": self.wins, "losses": self.losses, "margin": self.margin,
                "z": round(self.z, 4), "p_value": round(self.p_value, 6), "holds": self.holds}


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of a new round against the kept one on the same validation rows.

    Attributes:
        wins: rows the new round scores higher on.
        losses: rows the kept round scores higher on.
        p_value: one-sided exact sign-test p-value that the new round is better.
        better: ``p_value < ALPHA``.
        non_inferiority: the non-inferiority tests run (label-edit rounds that were not
            significantly better: against round 0 and the kept round); empty otherwise.
        kept: whether the new round is kept (better, or non-inferior in every test run).
    """

    wins: int
    losses: int
    p_value: float
    better: bool
    non_inferiority: tuple[NonInferiority, ...] = ()
    kept: bool | None = None

    @property
    def keep(self) -> bool:
        return self.better if self.kept is None else self.kept

    @property
    def rule(self) -> str:
        if self.better:
            return "superiority"
        return "non-inferiority" if self.keep else "none"

    def describe(self) -> str:
        verdict = "significantly better" if self.better else "not significantly better"
        text = (f"{verdict}: {self.wins} validation rows gained, {self.losses} lost "
                f"(exact one-sided sign test p = {self.p_value:.3g}, level {ALPHA})")
        for test in self.non_inferiority:
            verdict = "not worse" if test.holds else "not shown to be no worse"
            text += (f"; {verdict} than {round_name(test.against)} by {100 * test.margin:g} points or more "
                     f"(+{test.wins} / -{test.losses} of {test.rows}, Tango score test p = {test.p_value:.3g})")
        if self.non_inferiority and self.keep:
            text += "; kept for its label edits (non-inferior)"
        return text

    def to_json(self) -> dict:
        out = {"wins": self.wins, "losses": self.losses, "p_value": round(self.p_value, 6), "better": self.better,
               "alpha": ALPHA, "kept": self.keep, "rule": self.rule}
        if self.non_inferiority:
            out["non_inferiority"] = [t.to_json() for t in self.non_inferiority]
        return out


def _discordant(kept: np.ndarray, new: np.ndarray) -> tuple[int, int]:
    kept, new = np.asarray(kept, dtype=float), np.asarray(new, dtype=float)
    if kept.shape != new.shape:
        raise ValueError(f"paired scores must have the same shape, got {kept.shape} and {new.shape}")
    diff = new - kept
    return int((diff > 0).sum()), int((diff < 0).sum())


def compare(kept: np.ndarray, new: np.ndarray, *, alpha: float = ALPHA) -> Comparison:
    """Paired one-sided test that ``new`` scores higher than ``kept`` on the same rows.

    Args:
        kept, new: ``[N]`` per-row scores in [0, 1] (1 = correct), same rows in the same order.
    """
    wins, losses = _discordant(kept, new)
    p = 1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
    return Comparison(wins, losses, p, p < alpha)


def tango_z(wins: int, losses: int, rows: int, margin: float) -> float:
    """Tango's score statistic for ``H0: p_new - p_ref = -margin`` from the discordant counts.

    ``x`` is the restricted maximum-likelihood estimate of P(reference right, new wrong)
    under the null (then P(new right, reference wrong) = ``x - margin``), the larger root
    of ``2 n x^2 - B x + losses * margin * (1 + margin) = 0`` with
    ``B = losses (1 + 3 margin) + wins (1 + margin) + 2 (n - wins - losses) margin``;
    ``z = ((wins - losses) / n + margin) / sqrt((2 x - margin - margin^2) / n)``.
    """
    n, d = float(rows), float(margin)
    if n <= 0:
        return float("-inf")
    b_coef = losses * (1 + 3 * d) + wins * (1 + d) + 2 * (n - wins - losses) * d
    disc = max(b_coef * b_coef - 8 * n * losses * d * (1 + d), 0.0)
    x = (b_coef + math.sqrt(disc)) / (4 * n)
    var = (2 * x - d - d * d) / n
    diff = (wins - losses) / n + d
    if var <= 0:
        return math.inf if diff > 0 else -math.inf
    return diff / math.sqrt(var)


def non_inferior(reference: np.ndarray, new: np.ndarray, *, against: int = 0, margin: float = MARGIN,
                 alpha: float = ALPHA) -> NonInferiority:
    """Tango's one-sided score test that ``new`` is not worse than ``reference`` by ``margin`` or more."""
    wins, losses = _discordant(reference, new)
    rows = int(np.asarray(new).size)
    z = tango_z(wins, losses, rows, margin)
    p = float(norm.sf(z))
    return NonInferiority(against, wins, losses, rows, margin, float(z), p, p < alpha)


def keep_best(scores: list[np.ndarray], kept: int, *, label_edits: bool = False,
              reference: np.ndarray | None = None) -> tuple[int, Comparison]:
    """The round to keep after the last of ``scores`` was trained, with the comparison behind it.

    ``scores[k]`` are round k's per-row validation scores; ``kept`` is the round kept so far.
    The last round replaces it when :func:`compare` finds it significantly better or, when
    ``label_edits`` (its changes include relabels made under the competence gate and the
    class-share cap), when :func:`non_inferior` holds against round 0 and the kept round.

    **Like with like.** ``reference`` (when given) are the scores of the *reference round*: a
    round with no edit trained exactly as the repair rounds are (the same training share, its
    own validation split, the same seed). It then stands in for round 0 in every comparison
    (while round 0 is the kept round, and in the non-inferiority test against round 0), so
    the question "did the edits help?" is asked of two models that differ only by the edits.
    Round 0 stays the output when no round is kept (see ``repair.rounds``). The
    :class:`NonInferiority` and the caller name the reference round ``-1``.
    """
    new = len(scores) - 1
    base = scores[0] if reference is None else reference
    held = base if kept == 0 else scores[kept]
    comparison = compare(held, scores[new])
    if comparison.better or not label_edits:
        return (new if comparison.better else kept), comparison
    against = {0 if reference is None else REFERENCE: base}
    if kept != 0:
        against[kept] = scores[kept]
    tests = tuple(non_inferior(s, scores[new], against=r) for r, s in against.items())
    keep = all(t.holds for t in tests)
    comparison = Comparison(comparison.wins, comparison.losses, comparison.p_value, False, tests, keep)
    return (new if keep else kept), comparison


def round_name(k: int) -> str:
    """``"round k"``, or ``"the reference round"`` for :data:`REFERENCE`."""
    return "the reference round" if k == REFERENCE else f"round {k}"
