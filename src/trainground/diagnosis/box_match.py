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

**Abstention** where the detector cannot judge (``abstain``), two rules fixed before they were
measured on fresh seeds (benchmarks/README.md):

- ``"unmatched"`` (the default): a labelled box that no predicted box matches (best IoU < 0.5)
  abstains. The check reads the model's probabilities *at the box*; where the model has no
  prediction there, the 0 it would read is an imputation, not a reading, and "no prediction
  here" says as much about a small or hard correct object as about a wrong box.
- ``"group"``: the labelled boxes are grouped by given class and size (the quartiles of box
  area), and a box abstains when its group is not *localised*: fewer than half of its boxes
  (``LOCALISED_SHARE``, "more often than not") matched by a predicted box. It guards against a
  detector that cannot localise a whole kind of box (it abstained on no box of this project's
  benchmark, where every group is matched at 80 % or more).
- ``"none"``: every box judged (the earlier rule).

An abstaining box gets neither flag; it is counted and listed in the evidence. The bars are
computed over all boxes, whatever the rule.

**The competence gate** (:func:`gate_class_flags`, the class tasks' gate of
:mod:`trainground.diagnosis.competence`, fixed before it was measured): a detector whose class
skill on the validation images (:func:`class_competence`) is below ``MIN_SKILL`` confuses
classes as often as the labels could be wrong, so its *another class* flags are *withheld*: not
flagged, counted and listed apart (``withheld``). The *missing* flags do not depend on naming the
class and are kept.

**Two signals agree** (``box_rule="agree"``, :func:`agree_with_loss`, the fusion recipe's default until "peers";
fixed on development seeds 0-2 before its fresh-seed figures, seeds 40-45: precision 0.42 / recall
0.40 against the flags as they are, 0.20 / 0.47): a flag stands only where the object's own early-learning loss
(``losses.detection.DetectionLoss.per_object``, averaged over the window) is also unusually high,
its robust z-score (``target_outliers.robust_z``) at least ``AGREE_Z`` = 2. The two read different
things: the flags read the class probabilities of the cells whose box matches the labelled one, at
the window's end, against the per-class and background bars; the loss reads the object's assigned
cell, its class *and* its box regression (GIoU), over every epoch of the window. A correct box the
detector happens to confuse at the end, or reads weakly, rarely also costs an unusual loss over the
whole window (confident learning's idea of trusting where independent readings agree). Why 2: the
box check has already singled the box out, so the loss only has to confirm that it is unusual (the
conventional one-sided two-sigma tail, ~2 % of a Gaussian), not extreme (the loss check's own 3.5,
made to flag 1 in 2000 on its own); on seeds 0-2 the cuts 1 / 2 / 3.5 gave precision 0.42 / 0.51 /
0.52 at recall 0.51 / 0.46 / 0.33. Flags the loss does not confirm are counted and listed apart
(``unconfirmed``).

**The loss against its peers** (``box_rule="peers"``, :func:`agree_with_peers`, the fusion recipe's
default; written down and committed before its fresh-seed figures, seeds 50-55: precision 0.50 /
recall 0.50 against "agree"'s 0.47 / 0.41, benchmarks/README.md), three changes to "agree", each with
its reason:

- the object's loss is scored against its *peers* (:func:`peer_loss_z`): the boxes of the same given
  class and size quartile (the groups above), not all boxes. A small box, or one of a class the
  detector knows less, costs more loss when it is correct; confident learning sets one bar per class
  for the same reason. A group with fewer than ``MIN_PEERS`` boxes falls back to all boxes (the MAD
  of a few values is unstable);
- where the detector reads *no object* at the box, the loss must carry the decision: a *missing*
  flag stands only at the loss check's own cut ``target_outliers.Z_THRESHOLD`` = 3.5, not 2. "Nothing
  seen here" is what the detector also reads at a small or hard correct object (most false *missing*
  flags are such), so it is weak evidence; "another class seen here" is a specific reading, and the
  loss only has to confirm it (z >= ``AGREE_Z`` = 2, as before);
- a box no predicted box matches (``abstained``: the class probabilities have nothing to read) is no
  longer left unjudged: the loss alone judges it, at the same cut 3.5, and flags it *missing*
  (``by_loss`` marks these flags). The loss is defined at every labelled box whether a prediction
  covers it or not; the loss check alone (z > 3.5 over all boxes) found ~96 % of the moved boxes.

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

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from trainground.boxes import box_iou
from trainground.diagnosis.competence import Competence, measure_competence
from trainground.diagnosis.target_outliers import Z_THRESHOLD, robust_z

# The match rule of mAP@0.5: a predicted box "is" a labelled box at IoU >= 0.5.
MATCH_IOU = 0.5
# A (class, size) group of labelled boxes is judged when the detector matches at least this
# share of them: it localises such boxes more often than not.
LOCALISED_SHARE = 0.5
# Size groups: the quartiles of labelled box area.
SIZE_BINS = 4
# box_rule "agree": a flag stands where the object's early-learning loss has a robust z of at least this.
AGREE_Z = 2.0
# box_rule "peers": a (class, size) group needs this many boxes for its own robust z (else all boxes).
MIN_PEERS = 20


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
        abstained: the box was not judged (``box_label_issues``'s ``abstain`` rule).
        localised_share: the share of the box's group matched by a predicted box (NaN: padding).
        size_bin: the box's size group (0: smallest quarter; -1: padding); ``size_edges``: the
            area quartiles ``[SIZE_BINS - 1]`` that separate them.
        seen: the most probable class at the box (-1: padding or no predicted box there).
        withheld: *another class* flags withheld by the competence gate (:func:`gate_class_flags`;
            None: not gated).
        competence: the detector's class competence the gate read (None: not gated).
        unconfirmed: flags the per-object loss did not confirm (:func:`agree_with_loss`; None:
            the rule "match", no agreement asked).
        loss_z: the robust z of each object's early-learning loss (None: not read).
        by_loss: *missing* flags on boxes the class probabilities did not judge (``abstained``),
            raised by the loss alone (:func:`agree_with_peers`; None: not judged so).
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
    abstained: Tensor
    localised_share: Tensor
    size_bin: Tensor
    size_edges: Tensor
    seen: Tensor
    withheld: Tensor | None = None
    competence: Competence | None = None
    unconfirmed: Tensor | None = None
    loss_z: Tensor | None = None
    by_loss: Tensor | None = None

    @property
    def is_issue(self) -> Tensor:
        return self.missing | self.other_class

    @property
    def score(self) -> Tensor:
        """``[N, M]`` in [0, 1], low = suspicious: the given class's probability over its bar (capped at 1)."""
        bars = self.class_bars[self.given.clamp_min(0)].clamp_min(1e-12)
        return torch.where(self.given >= 0, (self.given_prob / bars).clamp(0, 1), torch.full_like(self.given_prob, float("nan")))

    def evidence(self, target: Tensor, index: Tensor | None = None, *, abstained: bool = False,
                 withheld: bool = False, unconfirmed: bool = False) -> list[dict[str, object]]:
        """One row per flagged object (``abstained``: per object the check abstained on; ``withheld``:
        per *another class* flag the competence gate withheld; ``unconfirmed``: per flag the loss did
        not confirm): image (its dataset ``index`` when given, else its position), object row, box,
        given and seen class, probabilities, best IoU, size group, the share of its group the detector
        localises, and the loss's robust z when read."""
        rows = []
        if unconfirmed:
            chosen, kind = (self.unconfirmed if self.unconfirmed is not None else torch.zeros_like(self.missing)), "unconfirmed"
        elif withheld:
            chosen, kind = (self.withheld if self.withheld is not None else torch.zeros_like(self.missing)), "other_class_withheld"
        else:
            chosen, kind = (self.abstained, "abstain") if abstained else (self.is_issue, "")
        for image, obj in chosen.nonzero().tolist():
            issue = kind or ("missing" if bool(self.missing[image, obj]) else "other_class")
            rows.append({
                "image": image if index is None else int(index[image]), "object": obj, "box": [round(float(v), 2) for v in target[image, obj, :4]],
                "given_class": int(target[image, obj, 4]), "issue": issue,
                "predicted_class": int(self.predicted[image, obj]), "objectness": round(float(self.objectness[image, obj]), 4),
                "given_prob": round(float(self.given_prob[image, obj]), 4), "best_iou": round(float(self.best_iou[image, obj]), 4),
                "size_bin": int(self.size_bin[image, obj]), "localised_share": round(float(self.localised_share[image, obj]), 4),
                **({} if self.loss_z is None else {"loss_z": round(float(self.loss_z[image, obj]), 3)}),
                **({} if self.by_loss is None else {"by_loss": bool(self.by_loss[image, obj])}),
            })
        return rows

    def groups(self) -> list[dict[str, object]]:
        """Per (class, size group) with boxes: how many, the share localised, whether judged."""
        valid = self.given >= 0
        rows = []
        for c in range(len(self.class_bars)):
            for b in range(len(self.size_edges) + 1):
                members = valid & (self.given == c) & (self.size_bin == b)
                if bool(members.any()):
                    share = float(self.localised_share[members][0])
                    rows.append({"class": c, "size_bin": b, "boxes": int(members.sum()), "localised_share": round(share, 4),
                                 "judged": share >= LOCALISED_SHARE})
        return rows


def localised_groups(target: Tensor, matched: Tensor, *, bins: int = SIZE_BINS) -> tuple[Tensor, Tensor, Tensor]:
    """Per labelled box, the share of its (given class, area quantile) group that ``matched`` holds.

    Args:
        target: ``[N, M, 5]`` the labelled boxes and classes (-1: padding).
        matched: ``[N, M]`` whether a predicted box matches each labelled one.
        bins: how many area quantile groups.

    Returns:
        ``share`` ``[N, M]`` (NaN for padding), ``size_bin`` ``[N, M]`` (-1 for padding) and the
        ``[bins - 1]`` area edges between the groups.
    """
    valid = target[..., 4] >= 0
    given = target[..., 4].long()
    area = (target[..., 2] - target[..., 0]).clamp_min(0) * (target[..., 3] - target[..., 1]).clamp_min(0)
    inner = torch.arange(1, bins, dtype=torch.float64) / bins
    edges = torch.quantile(area[valid].double(), inner).float() if bool(valid.any()) else torch.zeros(bins - 1)
    size_bin = torch.where(valid, torch.bucketize(area.float().contiguous(), edges, right=True), -1)
    share = torch.full(area.shape, float("nan"))
    for c in given[valid].unique().tolist():
        for b in range(bins):
            members = valid & (given == c) & (size_bin == b)
            if bool(members.any()):
                share[members] = matched[members].float().mean()
    return share, size_bin, edges


def box_label_issues(q: Tensor, target: Tensor, background: Tensor, best_iou: Tensor | None = None,
                     *, abstain: Literal["unmatched", "group", "none"] = "unmatched") -> BoxIssues:
    """Missing boxes and class swaps by confident learning at the labelled boxes (module docstring).

    Args:
        q: ``[N, M, C]`` class probabilities at each labelled box (:func:`located_class_probs`).
        target: ``[N, M, 5]`` the labelled boxes and classes (-1: padding).
        background: ``[N, K]`` largest class probability of the background cells (NaN elsewhere).
        best_iou: ``[N, M]`` the best IoU of a predicted box with each labelled one (when not
            given, a box counts as matched where some class probability at it is above 0).
        abstain: which boxes are not judged (module docstring): ``"unmatched"`` those no predicted
            box matches, ``"group"`` those of a (class, size) group the detector localises less
            than half the time, ``"none"`` no box (the earlier rule).
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
    matched = best_iou >= MATCH_IOU if best_iou is not None else q.amax(dim=2) > 0
    share, size_bin, edges = localised_groups(target, matched & valid)
    if abstain not in ("unmatched", "group", "none"):
        raise ValueError(f"abstain must be 'unmatched', 'group' or 'none', not {abstain!r}")
    abstained = valid & {"unmatched": ~matched, "group": share < LOCALISED_SHARE, "none": torch.zeros_like(valid)}[abstain]
    judged = valid & ~abstained
    missing = judged & (objectness <= background_bar)
    other = judged & ~missing & (predicted >= 0) & (predicted != given) & (given_prob < bars[given])
    predicted = torch.where(valid, predicted, -1)
    iou = best_iou if best_iou is not None else torch.full_like(objectness, float("nan"))
    seen = torch.where(valid & matched, q.argmax(dim=2), -1)
    return BoxIssues(torch.where(valid, given, -1), missing, other, predicted, objectness, given_prob, iou, bars, background_bar,
                     abstained, share, size_bin, edges, seen)


def agree_with_loss(issues: BoxIssues, loss_z: Tensor, *, z: float = AGREE_Z, missing_z: float | None = None,
                    unmatched_z: float | None = None) -> BoxIssues:
    """The rule "agree" (module docstring): ``issues`` keeping only the flags whose object's
    early-learning loss has a robust z-score ``loss_z`` (``[N, M]``, NaN for padding) of at least
    ``z`` (*missing* flags: ``missing_z`` when given); the others moved to ``unconfirmed``, ``loss_z``
    recorded. ``unmatched_z``: the abstained boxes whose z reaches it are flagged *missing* by the loss
    alone (``by_loss``); None: they stay unjudged."""
    lz = torch.nan_to_num(loss_z.double(), nan=-math.inf)
    other_ok, missing_ok = lz >= z, lz >= (z if missing_z is None else missing_z)
    by_loss = issues.abstained & (lz >= unmatched_z) if unmatched_z is not None else None
    missing = issues.missing & missing_ok
    return replace(issues, missing=missing if by_loss is None else missing | by_loss,
                   other_class=issues.other_class & other_ok,
                   unconfirmed=(issues.missing & ~missing_ok) | (issues.other_class & ~other_ok),
                   loss_z=loss_z.float(), by_loss=by_loss)


def peer_loss_z(loss: Tensor, given: Tensor, size_bin: Tensor, *, min_peers: int = MIN_PEERS) -> Tensor:
    """``[N, M]`` each object's robust z (``target_outliers.robust_z``) of ``loss`` against its peers:
    the objects of the same ``given`` class and ``size_bin`` (-1: padding, NaN); a group with fewer than
    ``min_peers`` finite losses is scored against all objects."""
    valid = (given >= 0) & torch.isfinite(loss)
    z = robust_z(torch.where(valid, loss.double(), math.nan))
    for c in given[valid].unique().tolist():
        for b in size_bin[valid & (given == c)].unique().tolist():
            members = valid & (given == c) & (size_bin == b)
            if int(members.sum()) >= min_peers:
                z[members] = robust_z(torch.where(members, loss.double(), math.nan))[members]
    return z


def agree_with_peers(issues: BoxIssues, loss: Tensor, *, min_peers: int = MIN_PEERS) -> BoxIssues:
    """The rule "peers" (module docstring): the object's early-learning ``loss`` (``[N, M]``, NaN for
    padding) scored against its (class, size) peers; *another class* confirmed at ``AGREE_Z``, *missing*
    at ``Z_THRESHOLD``, and the abstained boxes judged by the loss alone at ``Z_THRESHOLD``."""
    z = peer_loss_z(loss, issues.given, issues.size_bin, min_peers=min_peers)
    return agree_with_loss(issues, z, z=AGREE_Z, missing_z=Z_THRESHOLD, unmatched_z=Z_THRESHOLD)


def gate_class_flags(issues: BoxIssues, competence: Competence) -> BoxIssues:
    """The competence gate (module docstring): ``issues`` with its *another class* flags moved to
    ``withheld`` when ``competence`` is below the skill gate, kept otherwise; ``competence`` recorded."""
    if competence.skilled:
        return replace(issues, withheld=torch.zeros_like(issues.other_class), competence=competence)
    return replace(issues, other_class=torch.zeros_like(issues.other_class), withheld=issues.other_class,
                   competence=competence)


def class_competence(issues: BoxIssues, images: Tensor | None = None) -> Competence:
    """How well the detector names the objects it localises: the given class against the most
    probable class at each matched box of ``images`` (``[N]`` bool; pass the validation images,
    labels never trained on), measured as the class tasks' label checks measure their model
    (:mod:`trainground.diagnosis.competence`: skill over the majority class, at least 1/2).

    A detector below that skill confuses classes as often as the labels could: its *another
    class* flags are then as much its own confusions as swapped labels, and say so.
    """
    rows = issues.seen >= 0
    if images is not None:
        rows = rows & images[:, None]
    return measure_competence(issues.given[rows].numpy(), issues.seen[rows].numpy(), len(issues.class_bars))
