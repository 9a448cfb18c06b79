"""How much the trained model knows beyond the class prior, measured on the validation split.

Both the diagnosis (is a label-issue flag evidence of a wrong label?) and the repair (may
the model relabel? ``repair.competence``) ask it the same way, on the validation rows
(labels as given, never trained on), with a threshold fixed before any run:

- **Skill over the majority baseline** (the forecast-verification skill score,
  ``(accuracy - majority) / (1 - majority)``, where ``majority`` is the accuracy of always
  predicting the most frequent class) must be at least :data:`MIN_SKILL` = 1/2: the model
  must get right more than half of the rows the baseline gets wrong. A model barely above
  the baseline has mostly learned the class prior: the rows it disagrees with are as much
  its own confusions as wrong labels, and its "corrections" would move rows into the
  frequent classes (issue 14: 68 % accuracy on a hard survey table, one class shrunk
  from 177 rows to 22).
- **Per class**, the model's validation precision (of the rows it predicts as ``c``, the
  share labelled ``c``), which the repair's relabel gate reads.

Both are measured against noisy labels, which lowers them (a right prediction on a
wrongly labelled row counts as an error), so the measure errs on the side of calling a
model weak. Under symmetric noise at rate ``r`` with ``K`` balanced classes a model of
skill ``S`` measures about ``S (1 - r K / (K - 1))``: a perfect model reaches the gate at
``r = 0.45`` (``K = 10``), a model that is 95 % right already at ``r = 0.42``, and on a
validation split of ~150 rows the measured skill varies by ~0.05 from seed to seed, so at
40 % symmetric noise the gate declines on some seeds even for a model that is 95 % right
(benchmark B, digits sym40 seed 2: measured skill 0.47, 0.94 on the true labels).

This is not corrected. The only estimate of the noise rate at hand comes from the model
being judged (confident learning's joint counts the rows it confidently disagrees with),
and the corrected skill, ``(accuracy - majority) / (1 - r - majority)``, reaches 1 for
*any* model when ``r`` is its own disagreement rate ``1 - accuracy``: it cannot tell a weak
model from noisy labels. Measured: on the hard tables of issue 14 the estimate is 56 %
(fair) and 52 % (anes96), corrected skills 2.03 and 0.98, so the gate would relabel
exactly the tables it exists for. The findings report the estimate (and the skill a model
that is always right would measure with that many wrong labels) so that a user can judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainground.diagnosis.confident_learning import confident_joint

MIN_SKILL = 0.5


@dataclass(frozen=True)
class Competence:
    """The trained model on the validation rows.

    Attributes:
        accuracy: validation accuracy (labels as given).
        majority: accuracy of always predicting the most frequent validation class.
        skill: ``(accuracy - majority) / (1 - majority)``.
        precision: ``[C]`` validation precision per predicted class (NaN: never predicted).
        predicted: ``[C]`` validation rows predicted as each class.
        label_noise: an estimate of the share of wrong labels (from the same model:
            reported, never used to decide), or None.
    """

    accuracy: float
    majority: float
    skill: float
    precision: np.ndarray
    predicted: np.ndarray
    label_noise: float | None = None

    @property
    def perfect_skill(self) -> float | None:
        """The skill a model that is always right would measure if ``label_noise`` of the labels were wrong."""
        if self.label_noise is None or not self.majority < 1.0:
            return None
        return (1.0 - self.label_noise - self.majority) / (1.0 - self.majority)

    @property
    def skilled(self) -> bool:
        """Skill over the majority baseline at least :data:`MIN_SKILL`."""
        return bool(self.skill >= MIN_SKILL)

    def figures(self) -> dict[str, float]:
        """The numbers a finding shows (rounded; JSON-safe)."""
        return {"val_accuracy": round(self.accuracy, 4), "majority_baseline": round(self.majority, 4),
                "skill": round(self.skill, 4), "min_skill": MIN_SKILL}


def label_noise_estimate(labels: np.ndarray, probs: np.ndarray | None) -> float | None:
    """Confident learning's estimate of the share of wrong labels: the off-diagonal mass of the
    confident joint of ``labels`` and ``probs`` (``[N, C]``); None without probabilities."""
    labels = np.asarray(labels, dtype=np.int64)
    if probs is None or len(labels) == 0 or len(probs) != len(labels):
        return None
    joint = confident_joint(labels, np.asarray(probs, dtype=np.float64))
    total = joint.sum()
    return float(1.0 - np.trace(joint) / total) if total > 0 else None


def measure_competence(given: np.ndarray, predicted: np.ndarray, num_classes: int,
                       label_noise: float | None = None) -> Competence:
    """:class:`Competence` from the validation rows' given and predicted class ids (``label_noise``:
    e.g. :func:`label_noise_estimate` of the same run, reported only)."""
    given, predicted = np.asarray(given, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    n = len(given)
    if n == 0:
        return Competence(float("nan"), float("nan"), float("-inf"), np.full(num_classes, np.nan),
                          np.zeros(num_classes, dtype=np.int64), label_noise)
    accuracy = float((given == predicted).mean())
    majority = float(np.bincount(given, minlength=num_classes).max() / n)
    skill = (accuracy - majority) / (1.0 - majority) if majority < 1.0 else float("-inf")
    counts = np.bincount(predicted, minlength=num_classes)
    hits = np.bincount(predicted[given == predicted], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return Competence(accuracy, majority, float(skill), precision, counts, label_noise)
