"""What the label policies read from a diagnosis, in one place, so relabel, quarantine and
reweight split the samples by the same rule and never disagree about one sample.

Principles behind the thresholds (none is tuned on a benchmark):

- *Flagged* is confident learning's verdict (``is_label_issue``): the number of flagged
  samples comes from the estimated noise rate of each class pair (the confident joint),
  not from a threshold of ours.
- *Strong evidence for another label* = the early-learning probability of the suggested
  class is at least :data:`STRONG_EVIDENCE` (one half) and it is the most probable class.
  Above one half the suggested class is more probable than every other class *together*,
  the given one included, so replacing the label is more likely right than wrong even
  in the worst case; below it, no single label is trustworthy and the sample is
  quarantined instead. The early-learning probabilities are the model's view before it
  memorised the noisy labels, and the suggestion came from them averaged with the
  sample's neighbours, so requiring both to name the same class is an agreement of two views.
- *Wrong* = flagged and the given label's estimated probability (the check's
  ``label_score``) is below chance, ``1 / K``: the evidence is positively against the
  label, not merely unsure. A flagged sample that is neither relabelled nor wrong is
  only uncertain.
- *Uncertain* = not relabelled, not wrong, and the early-learning view prefers another
  class (flagged or not): the sample is down-weighted by the likelihood ratio ``p(given) / p(most probable)``, which
  is 1 when the given label is the model's choice and shrinks as the evidence against it
  grows (a soft version of the flag, as in importance reweighting).

References:
    Northcutt, Jiang & Chuang, "Confident Learning", JAIR 2021;
    Liu & Tao, "Classification with Noisy Labels by Importance Reweighting", TPAMI 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainground.repair.policy import RepairContext

# A label is replaced only when its replacement holds the majority of the probability mass.
STRONG_EVIDENCE = 0.5


@dataclass(frozen=True)
class LabelEvidence:
    """Per-sample label evidence of one diagnosis, rows in the context's data order."""

    index: np.ndarray          # input indices
    given: np.ndarray          # class ids the round trained with
    flagged: np.ndarray        # confident learning's label-issue flag
    suggested: np.ndarray      # class ids suggested by the diagnosis
    label_score: np.ndarray    # estimated probability of the given label (the check's score)
    probs: np.ndarray | None   # [N, C] early-learning probabilities, or None

    def suggested_prob(self) -> np.ndarray:
        if self.probs is None:
            return np.zeros(len(self.given))
        return self.probs[np.arange(len(self.given)), self.suggested]

    def strong(self) -> np.ndarray:
        """Flagged samples whose suggested label the evidence supports (relabel them)."""
        if self.probs is None:
            return np.zeros(len(self.given), dtype=bool)
        agree = self.probs.argmax(axis=1) == self.suggested
        return self.flagged & (self.suggested != self.given) & agree & (self.suggested_prob() >= STRONG_EVIDENCE)

    def wrong(self) -> np.ndarray:
        """Flagged samples whose given label is below chance (``label_score < 1 / K``)."""
        k = self.probs.shape[1] if self.probs is not None else int(self.given.max(initial=0)) + 1
        return self.flagged & (self.label_score < 1.0 / max(k, 2))

    def uncertain_weight(self) -> np.ndarray:
        """``p(given) / max_c p(c)`` of the uncertain samples (1 elsewhere): not relabelled, not
        quarantined, and the early-learning view prefers another class."""
        if self.probs is None:
            return np.ones(len(self.given))
        rows = np.arange(len(self.given))
        ratio = self.probs[rows, self.given] / np.maximum(self.probs.max(axis=1), 1e-12)
        decided = self.strong() | self.wrong()
        return np.where(decided, 1.0, np.clip(ratio, 0.0, 1.0))


def label_evidence(context: RepairContext) -> LabelEvidence | None:
    """The label evidence of ``context``'s diagnosis; None when it ran no label check."""
    table = context.table
    if table is None or "is_label_issue" not in table or len(table) != len(context.data):
        return None
    data = context.data
    probs = None
    if context.pred_probs is not None and len(context.pred_probs) == len(data):
        probs = np.asarray(context.pred_probs, dtype=np.float64)
    return LabelEvidence(
        index=data.index.numpy(), given=data.labels.numpy(),
        flagged=table["is_label_issue"].to_numpy(dtype=bool),
        suggested=data.encoder.encode(table["suggested_label"]),
        label_score=table["label_score"].to_numpy(dtype=np.float64), probs=probs,
    )
