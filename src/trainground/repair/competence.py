"""Is the model good enough to relabel? Measured on the frozen validation split, before relabelling.

A relabel replaces the label a person gave with the model's prediction. That is only
sound where the model's predictions are more often right than wrong, so the relabel
policy asks two questions of the round's model on the validation rows, both fixed
before any run. The measurement itself (skill over the majority baseline, per-class
precision, and why it is not corrected for label noise) is the diagnosis's
(``diagnosis.competence``), shared with the label-issue finding of ``trainground diagnose``:

- skill over the majority baseline at least :data:`MIN_SKILL` = 1/2 (the model gets right
  more than half of the rows the baseline gets wrong);
- relabelling *into* class ``c`` only where the model's validation precision for ``c`` is
  above :data:`MIN_PRECISION` = 1/2: its ``c`` is then more likely right than wrong, the
  same majority principle as the per-sample rule (``policies/_evidence``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from trainground.diagnosis import Finding, Severity
from trainground.diagnosis.competence import MIN_SKILL, label_noise_estimate
from trainground.diagnosis.competence import Competence as _Measured
from trainground.diagnosis.competence import measure_competence as _measure

MIN_PRECISION = 0.5

__all__ = ["MIN_PRECISION", "MIN_SKILL", "Competence", "label_noise_estimate", "measure_competence"]


@dataclass(frozen=True)
class Competence(_Measured):
    """The diagnosis's measure (:class:`trainground.diagnosis.competence.Competence`) with the relabel gate."""

    def may_relabel_into(self) -> np.ndarray:
        """``[C]`` whether relabelling into each class is allowed."""
        precise = np.nan_to_num(self.precision, nan=0.0) > MIN_PRECISION
        return precise & self.skilled

    def findings(self, classes: tuple) -> list[Finding]:
        """Why relabelling is declined (globally or for some classes); empty when it is allowed everywhere."""
        figures = self.figures()
        if not self.skilled:
            noise = ""
            if self.perfect_skill is not None:
                figures.update(label_noise_estimate=round(float(self.label_noise), 4),
                               perfect_model_skill=round(float(self.perfect_skill), 4))
                noise = (f". Or the labels are too noisy to show it: confident learning estimates "
                         f"{100 * self.label_noise:.0f} % of them wrong, and with that many a model that is always "
                         f"right would measure skill {self.perfect_skill:.2f}; the estimate comes from the same "
                         "model, so these labels cannot tell the two apart")
            return [Finding(
                check="relabel_competence", severity=Severity.WARNING, subject="dataset",
                message=(f"the model is too weak to relabel: validation accuracy {100 * self.accuracy:.1f} % against "
                         f"{100 * self.majority:.1f} % for always predicting the most frequent class (skill "
                         f"{self.skill:.2f} < {MIN_SKILL}); no label is changed{noise}"),
                evidence=figures,
                suggestion="a better model (features, capacity, training) must come first, or a validation set with "
                           "checked labels; review the flagged rows by hand (sample_issues.csv) rather than trusting "
                           "the suggested labels",
            )]
        weak = [c for c in range(len(self.precision)) if not self.may_relabel_into()[c]]
        if not weak:
            return []
        names = ", ".join(f"{classes[c]!r} ({_pct(self.precision[c])} of {int(self.predicted[c])})" for c in weak)
        return [Finding(
            check="relabel_competence", severity=Severity.INFO, subject="dataset",
            message=(f"no row is relabelled into {len(weak)} class(es) whose validation precision is not above "
                     f"{MIN_PRECISION}: {names}"),
            evidence={**figures, "classes": [str(classes[c]) for c in weak],
                      "precision": [None if np.isnan(self.precision[c]) else round(float(self.precision[c]), 4)
                                    for c in weak], "min_precision": MIN_PRECISION},
            suggestion="the model's predictions of these classes are as often wrong as right; check their rows by hand",
        )]


def _pct(value: float) -> str:
    return "never predicted" if np.isnan(value) else f"{100 * value:.0f} %"


def measure_competence(given: np.ndarray, predicted: np.ndarray, num_classes: int,
                       label_noise: float | None = None) -> Competence:
    """:func:`trainground.diagnosis.competence.measure_competence`, as the relabel gate's :class:`Competence`
    (``label_noise``: :func:`label_noise_estimate` of the round's diagnosis, reported in the finding only)."""
    measured = _measure(given, predicted, num_classes, label_noise=label_noise)
    return Competence(**{f.name: getattr(measured, f.name) for f in fields(measured)})
