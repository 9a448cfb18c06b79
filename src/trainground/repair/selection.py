"""Which repair round to keep: one rule for every kind of repair (data, training, multi-task).

A later round replaces the kept one only when it is *significantly* better on the same
validation rows, by a paired test fixed before any run:

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

The paired test uses the rows both models saw, so it is much more sensitive than comparing
two accuracies as if they came from different samples.

References:
    McNemar, "Note on the sampling error of the difference between correlated proportions
    or percentages", Psychometrika 1947;
    Dietterich, "Approximate Statistical Tests for Comparing Supervised Classification
    Learning Algorithms", Neural Computation 1998 (McNemar for comparing two classifiers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

# One-sided level of the paired test, fixed a priori (not tuned on any benchmark).
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of a new round against the kept one on the same validation rows.

    Attributes:
        wins: rows the new round scores higher on.
        losses: rows the kept round scores higher on.
        p_value: one-sided exact sign-test p-value that the new round is better.
        better: ``p_value < ALPHA``.
    """

    wins: int
    losses: int
    p_value: float
    better: bool

    def describe(self) -> str:
        verdict = "significantly better" if self.better else "not significantly better"
        return (f"{verdict}: {self.wins} validation rows gained, {self.losses} lost "
                f"(exact one-sided sign test p = {self.p_value:.3g}, level {ALPHA})")

    def to_json(self) -> dict[str, float | int | bool]:
        return {"wins": self.wins, "losses": self.losses, "p_value": round(self.p_value, 6), "better": self.better,
                "alpha": ALPHA}


def compare(kept: np.ndarray, new: np.ndarray, *, alpha: float = ALPHA) -> Comparison:
    """Paired one-sided test that ``new`` scores higher than ``kept`` on the same rows.

    Args:
        kept, new: ``[N]`` per-row scores in [0, 1] (1 = correct), same rows in the same order.
    """
    kept, new = np.asarray(kept, dtype=float), np.asarray(new, dtype=float)
    if kept.shape != new.shape:
        raise ValueError(f"paired scores must have the same shape, got {kept.shape} and {new.shape}")
    diff = new - kept
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    p = 1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
    return Comparison(wins, losses, p, p < alpha)


def keep_best(scores: list[np.ndarray], kept: int) -> tuple[int, Comparison]:
    """The round to keep after the last of ``scores`` was trained, with the comparison behind it.

    ``scores[k]`` are round k's per-row validation scores; ``kept`` is the round kept so far.
    The last round replaces it only when :func:`compare` finds it significantly better.
    """
    new = len(scores) - 1
    comparison = compare(scores[kept], scores[new])
    return (new if comparison.better else kept), comparison
