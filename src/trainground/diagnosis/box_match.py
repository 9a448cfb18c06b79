"""Wrong boxes in detection targets: what the model sees at each labelled box.

For each labelled object ``i`` (box ``b_i``, class ``c_i``) the detector's class
probabilities *at that box* are read from the cells whose predicted box matches it
(IoU >= 0.5, the match rule of mAP@0.5 / PASCAL VOC): ``q_i(j) = max`` over those cells of
``p(j)`` (0 when no cell's box matches). Then confident learning's rule (Northcutt et al.
2021), with its per-class thresholds and nothing tuned:

- ``t_j`` = the mean of ``q_i(j)`` over the objects *labelled* ``j`` (the model's average
  self-confidence on class ``j``; a model that is timid on one class gets a low bar there);
- the **background** bar ``t_bg`` = the mean, over background cells (cells whose predicted
  box matches no labelled box), of the cell's largest class probability: what the model
  gives a place where, by the labels, nothing is;
- an object is **missing** (a box where no object is: moved, or invented) when the model's
  largest class probability at its box is no higher than the background bar,
  ``max_j q_i(j) <= t_bg``: the model treats the labelled place like background;
- an object has **another class** when the given class is below its bar
  (``q_i(c_i) < t_{c_i}``) and some other class is above its own bar; the predicted class is
  the most probable of the classes above their bars (confident learning's off-diagonal of
  the confident joint).

Which predictions: those of the early-learning window's end (the epoch of the lowest
validation loss), before the network memorises the wrong boxes (Liu et al. 2020).

References:
    Northcutt, Jiang, Chuang. "Confident Learning: Estimating Uncertainty in Dataset Labels."
    JAIR 2021 (per-class thresholds, the confident joint).
    Everingham et al. "The PASCAL Visual Object Classes (VOC) Challenge." IJCV 2010 (IoU 0.5).
    Liu, Niles-Weed, Razavian, Fernandez-Granda. "Early-Learning Regularization Prevents
    Memorization of Noisy Labels." NeurIPS 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainground.boxes import box_iou

# The match rule of mAP@0.5: a predicted box "is" a labelled box at IoU >= 0.5.
MATCH_IOU = 0.5


@torch.no_grad()
def located_class_probs(output: Tensor, target: Tensor, *, match_iou: float = MATCH_IOU) -> tuple[Tensor, Tensor, Tensor]:
    """The detector's class probabilities at each labelled box, and at the background.

    Args:
        output: ``[N, H*W, 4 + C]`` a grid detection head's output (boxes in pixels, class logits).
        target: ``[N, M, 5]`` labelled ``(x1, y1, x2, y2, class)``, class -1 for padding.
        match_iou: IoU from which a cell's predicted box matches a labelled box.

    Returns:
        ``q`` ``[N, M, C]`` (max class probabilities over the matching cells, 0 where none
        matches), ``best_iou`` ``[N, M]`` (the best IoU of any cell's box with the labelled
        box), and ``background`` ``[N, H*W]`` (each cell's largest class probability, NaN for
        cells whose box matches a labelled box).
    """
    boxes, probs = output[..., :4].float(), torch.sigmoid(output[..., 4:].float())  # [N, K, 4], [N, K, C]
    labelled = target[..., :4].float()
    valid = target[..., 4] >= 0
    iou = box_iou(labelled[:, :, None], boxes[:, None])  # [N, M, K]
    match = (iou >= match_iou) & valid[..., None]
    q = torch.where(match[..., None], probs[:, None], torch.zeros(())).amax(dim=2)  # [N, M, C]
    background = torch.where(match.any(dim=1), float("nan"), probs.amax(dim=2))
    best_iou = torch.where(valid, iou.amax(dim=2), torch.full_like(iou[..., 0], float("nan")))
    return q, best_iou, background


@dataclass(frozen=True)
class BoxIssues:
    """Per labelled object (``[N, M]``, padding rows False / NaN / -1).

    Attributes:
        given: the labelled class (-1: padding).
        missing: the model sees background where the box is.
        other_class: the model confidently sees another class at the box.
        predicted: the class the model sees at the box (-1: none above its bar).
        objectness: ``max_j q(j)``, the model's largest class probability at the box.
        given_prob: ``q(c_i)``, its probability of the given class there.
        best_iou: best IoU of any predicted box with the labelled one.
        class_bars: ``[C]`` the per-class thresholds ``t_j``; ``background_bar``: ``t_bg``.
    """

    given: Tensor
    missing: Tensor
    other_class: Tensor
    predicted: Tensor
    objectness: Tensor
    given_prob: Tensor
    best_iou: Tensor
    class_bars: Tensor
    background_bar: float

    @property
    def is_issue(self) -> Tensor:
        return self.missing | self.other_class

    @property
    def score(self) -> Tensor:
        """``[N, M]`` in [0, 1], low = suspicious: the given class's probability over its bar (capped at 1)."""
        bars = self.class_bars[self.given.clamp_min(0)].clamp_min(1e-12)
        return torch.where(self.given >= 0, (self.given_prob / bars).clamp(0, 1), torch.full_like(self.given_prob, float("nan")))

    def evidence(self, target: Tensor, index: Tensor | None = None) -> list[dict[str, object]]:
        """One row per flagged object: image (its dataset ``index`` when given, else its position),
        object row, box, given and seen class, probabilities, best IoU."""
        rows = []
        for image, obj in self.is_issue.nonzero().tolist():
            rows.append({
                "image": image if index is None else int(index[image]), "object": obj, "box": [round(float(v), 2) for v in target[image, obj, :4]],
                "given_class": int(target[image, obj, 4]), "issue": "missing" if bool(self.missing[image, obj]) else "other_class",
                "predicted_class": int(self.predicted[image, obj]), "objectness": round(float(self.objectness[image, obj]), 4),
                "given_prob": round(float(self.given_prob[image, obj]), 4), "best_iou": round(float(self.best_iou[image, obj]), 4),
            })
        return rows


def box_label_issues(q: Tensor, target: Tensor, background: Tensor, best_iou: Tensor | None = None) -> BoxIssues:
    """Missing boxes and class swaps by confident learning at the labelled boxes (module docstring).

    Args:
        q: ``[N, M, C]`` class probabilities at each labelled box (:func:`located_class_probs`).
        target: ``[N, M, 5]`` the labelled boxes and classes (-1: padding).
        background: ``[N, K]`` largest class probability of the background cells (NaN elsewhere).
        best_iou: ``[N, M]`` for the evidence (NaN when not given).
    """
    valid = target[..., 4] >= 0
    given = target[..., 4].long().clamp_min(0)
    num_classes = q.shape[-1]
    bars = torch.stack([
        q[..., c][valid & (given == c)].mean() if bool((valid & (given == c)).any()) else q.new_tensor(float("inf"))
        for c in range(num_classes)
    ])
    bg = background[torch.isfinite(background)]
    background_bar = float(bg.mean()) if bg.numel() else 0.0
    objectness = torch.where(valid, q.amax(dim=2), torch.full_like(q[..., 0], float("nan")))
    given_prob = torch.where(valid, q.gather(2, given[..., None]).squeeze(2), torch.full_like(objectness, float("nan")))
    above = q >= bars
    predicted = torch.where(above.any(dim=2), torch.where(above, q, -1.0).argmax(dim=2), -1)
    missing = valid & (objectness <= background_bar)
    other = valid & ~missing & (predicted >= 0) & (predicted != given) & (given_prob < bars[given])
    predicted = torch.where(valid, predicted, -1)
    iou = best_iou if best_iou is not None else torch.full_like(objectness, float("nan"))
    return BoxIssues(torch.where(valid, given, -1), missing, other, predicted, objectness, given_prob, iou, bars, background_bar)
