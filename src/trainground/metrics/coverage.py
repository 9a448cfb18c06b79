"""Mode coverage: which classes a classifier trained on the real data finds among generated samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A class counts as covered when it holds at least this share of its uniform share 1/C of the
# generated samples. A priori: with C classes and M samples a generator that drew classes
# uniformly gives each ~M/C; a quarter of that is far below uniform sampling noise for M >= 40 C
# (the default evaluation draws 1000 samples for 10 classes), yet rules out a class reached only
# by the classifier's occasional error on a collapsed generator's samples.
MIN_SHARE_OF_UNIFORM = 0.25


@dataclass(frozen=True)
class ModeCoverage:
    """Share of classes covered, KL of the class histogram from uniform, and the histogram."""

    coverage: float
    kl_uniform: float
    counts: tuple[int, ...]

    def to_dict(self) -> dict[str, float]:
        return {"mode_coverage": self.coverage, "mode_kl": self.kl_uniform}


def mode_coverage(predicted: np.ndarray, num_classes: int, *,
                  min_share_of_uniform: float = MIN_SHARE_OF_UNIFORM) -> ModeCoverage:
    """Mode coverage of generated samples from their predicted classes.

    Args:
        predicted: ``[M]`` class predicted for each generated sample (by a classifier of real data).
        num_classes: C, the number of classes (modes) of the real data.
        min_share_of_uniform: a class is covered when its share is >= this times 1/C.

    Returns:
        ``coverage`` in [0, 1] (1: every class is produced), ``kl_uniform`` = KL(p || uniform) =
        log C - H(p) in nats (0: classes produced uniformly; log C: one class only).

    References:
        Srivastava, Valkov, Russell, Gutmann, Sutton. VEEGAN. NeurIPS 2017 (modes counted by a
        pre-trained classifier); Che et al. Mode Regularized GANs. ICLR 2017.
    """
    pred = np.asarray(predicted).reshape(-1)
    if pred.size == 0:
        raise ValueError("mode_coverage needs at least one prediction")
    if num_classes < 1 or pred.min() < 0 or pred.max() >= num_classes:
        raise ValueError(f"predicted classes must lie in [0, {num_classes - 1}]")
    counts = np.bincount(pred.astype(np.int64), minlength=num_classes)
    share = counts / counts.sum()
    covered = share >= min_share_of_uniform / num_classes
    nz = share[share > 0]
    kl = float(np.log(num_classes) + (nz * np.log(nz)).sum())
    return ModeCoverage(coverage=float(covered.mean()), kl_uniform=max(kl, 0.0),
                        counts=tuple(int(c) for c in counts))
