"""The wrong-box check: a box moved to where no object is gets flagged, a correct one not."""

import torch

from trainground.diagnosis.box_match import (
    AGREE_Z,
    agree_with_loss,
    agree_with_peers,
    box_label_issues,
    class_competence,
    gate_class_flags,
    located_class_probs,
    peer_loss_z,
)
from trainground.diagnosis.target_outliers import Z_THRESHOLD

GRID, STRIDE, C = 4, 8, 2  # a 32-pixel image, 4x4 cells of 8 pixels, two classes


def detector_output(objects):
    """A detector that sees ``objects`` ((box, class, prob)): each object's centre cell predicts
    its box with that class probability; every other cell predicts a 12x12 box centred on it
    with p = 0.02 (a detector's background cells still regress object-sized boxes)."""
    out = torch.zeros(1, GRID * GRID, 4 + C)
    for k in range(GRID * GRID):
        cx, cy = (k % GRID + 0.5) * STRIDE, (k // GRID + 0.5) * STRIDE
        out[0, k, :4] = torch.tensor([cx - 6, cy - 6, cx + 6, cy + 6])
        out[0, k, 4:] = torch.logit(torch.tensor(0.02))
    for box, cls, prob in objects:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        k = int(cy // STRIDE) * GRID + int(cx // STRIDE)
        out[0, k, :4] = torch.tensor(box, dtype=torch.float32)
        out[0, k, 4 + cls] = torch.logit(torch.tensor(prob))
    return out


def batch(images):
    outs, targets = [], []
    for seen, labelled in images:
        outs.append(detector_output(seen))
        rows = [[*box, cls] for box, cls in labelled] + [[0, 0, 0, 0, -1]] * (3 - len(labelled))
        targets.append(torch.tensor([rows], dtype=torch.float32))
    return torch.cat(outs), torch.cat(targets)


# EMPTY: B's size, where no object is, on the box an empty cell predicts (the model reads background there).
A, B, EMPTY = [2.0, 2.0, 12.0, 12.0], [18.0, 18.0, 30.0, 30.0], [14.0, 6.0, 26.0, 18.0]


def test_a_box_moved_to_an_empty_place_is_flagged_and_the_correct_ones_are_not():
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)]) for _ in range(6)]
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (EMPTY, 1)]))  # B's label moved to an empty corner
    out, target = batch(images)
    issues = box_label_issues(*_located(out, target))
    assert issues.missing[6, 1] and not issues.other_class[6, 1]
    assert int(issues.is_issue.sum()) == 1  # nothing else: not A of the same image, not the 12 correct boxes
    row = issues.evidence(target)[0]
    assert (row["image"], row["object"], row["issue"], row["given_class"]) == (6, 1, "missing", 1)
    assert row["best_iou"] == 1.0 and abs(row["objectness"] - 0.02) < 1e-4


def test_a_box_given_another_class_is_flagged_with_the_class_the_model_sees():
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)]) for _ in range(6)]
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 0)]))  # B labelled class 0, the model sees 1
    out, target = batch(images)
    issues = box_label_issues(*_located(out, target))
    assert issues.other_class[6, 1] and int(issues.predicted[6, 1]) == 1
    assert int(issues.is_issue.sum()) == 1


def test_a_timid_class_gets_its_own_bar():
    """Class 1 is seen with p = 0.15 only (far below class 0's 0.7) yet above the background's 0.02:
    its correct boxes are not flagged, because each class is judged against its own mean."""
    images = [([(A, 0, 0.7), (B, 1, 0.15)], [(A, 0), (B, 1)]) for _ in range(6)]
    out, target = batch(images)
    assert not box_label_issues(*_located(out, target)).is_issue.any()


def _located(out, target):
    q, best_iou, background = located_class_probs(out, target)
    return q, target, background, best_iou


SMALL = [5.0, 21.0, 8.0, 24.0]  # a 3x3 object: no cell's box (4x4 at its centre, else 12x12) reaches IoU 0.5


def test_a_box_no_prediction_matches_abstains_and_a_moved_box_the_model_reads_as_background_is_flagged():
    """The detector never localises the small class-0 objects (no predicted box matches them): they
    abstain (under both rules: nothing matches them, so their group is not localised either), though
    the earlier rule reads 0 there and flags them. B's label, moved to an empty place the model
    reads as background, is flagged."""
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1), (SMALL, 0)]) for _ in range(6)]
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (EMPTY, 1), (SMALL, 0)]))
    out, target = batch(images)
    for rule in ("unmatched", "group"):
        issues = box_label_issues(*_located(out, target), abstain=rule)
        assert issues.abstained[:, 2].all() and not issues.abstained[:, :2].any(), rule
        assert issues.missing[6, 1] and int(issues.is_issue.sum()) == 1, rule
        assert [row["object"] for row in issues.evidence(target, abstained=True)] == [2] * 7
    old = box_label_issues(*_located(out, target), abstain="none")  # the earlier rule judges every box
    assert old.missing[:, 2].all() and not old.abstained.any()


def test_the_group_rule_judges_an_unmatched_box_of_a_kind_the_detector_localises():
    """One of seven B boxes has no prediction on it: "unmatched" abstains on it, "group" judges it
    (its group is matched 6 times in 7) and, as the model reads nothing there, flags it."""
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)]) for _ in range(6)]
    images.append(([(A, 0, 0.7)], [(A, 0), (B, 1)]))  # the detector misses this B
    out, target = batch(images)
    assert box_label_issues(*_located(out, target)).abstained[6, 1]
    group = box_label_issues(*_located(out, target), abstain="group")
    assert not group.abstained.any() and group.missing[6, 1]
    assert {(g["class"], g["boxes"], g["judged"]) for g in group.groups()} >= {(1, 7, True)}


def test_class_competence_measures_the_detector_on_the_given_images_only():
    right = ([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)])
    confused = ([(A, 1, 0.7), (B, 0, 0.6)], [(A, 0), (B, 1)])  # the detector names both objects wrongly
    out, target = batch([right] * 4 + [confused] * 4)
    issues = box_label_issues(*_located(out, target))
    first, last = torch.arange(8) < 4, torch.arange(8) >= 4
    good, bad = class_competence(issues, first), class_competence(issues, last)
    assert good.accuracy == 1.0 and good.skilled
    assert bad.accuracy == 0.0 and not bad.skilled
    assert class_competence(issues).accuracy == 0.5  # all images: half right, skill 0 over the 50 % majority


def test_the_competence_gate_withholds_another_class_flags_of_a_confused_detector_and_keeps_missing_ones():
    """A swapped class and a moved box in images the detector names right: a detector measured as
    skilled keeps both flags; one measured as confused (on other images) keeps only the *missing*
    flag and lists the *another class* one as withheld."""
    right = ([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)])
    swapped = ([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 0)])
    moved = ([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (EMPTY, 1)])
    confused = ([(A, 1, 0.7), (B, 0, 0.6)], [(A, 0), (B, 1)])
    out, target = batch([right] * 6 + [swapped, moved] + [confused] * 2)
    issues = box_label_issues(*_located(out, target))
    assert issues.other_class[6, 1] and issues.missing[7, 1]
    skilled = gate_class_flags(issues, class_competence(issues, torch.arange(10) < 6))
    assert skilled.competence.skilled and skilled.other_class[6, 1] and not skilled.withheld.any()
    weak = gate_class_flags(issues, class_competence(issues, torch.arange(10) >= 8))
    assert not weak.competence.skilled
    assert not weak.other_class.any() and weak.withheld[6, 1] and int(weak.withheld.sum()) == int(issues.other_class.sum())
    assert weak.missing[7, 1] and torch.equal(weak.missing, issues.missing)
    rows = weak.evidence(target, withheld=True)
    assert [(r["image"], r["object"], r["issue"]) for r in rows if r["image"] == 6] == [(6, 1, "other_class_withheld")]
    assert all(r["issue"] == "missing" for r in weak.evidence(target))


def test_the_rule_agree_keeps_a_flag_only_where_the_object_loss_confirms_it():
    """A moved box (unusual loss over the window, z 6) and a correct box the detector reads weakly at
    the window's end (p 0.015, below the background's 0.02; a typical loss, z 0.4): the rule "match"
    flags both as *missing*; "agree" keeps the moved one and lists the other as unconfirmed."""
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)]) for _ in range(6)]
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (EMPTY, 1)]))  # B's label moved to an empty place
    images.append(([(A, 0, 0.7), (B, 1, 0.015)], [(A, 0), (B, 1)]))  # correct, read weakly
    out, target = batch(images)
    match = box_label_issues(*_located(out, target))
    assert match.missing[6, 1] and match.missing[7, 1] and int(match.is_issue.sum()) == 2
    loss_z = torch.where(target[..., 4] >= 0, 0.0, float("nan"))
    loss_z[6, 1], loss_z[7, 1] = 6.0, 0.4
    agree = agree_with_loss(match, loss_z)
    assert agree.missing[6, 1] and not agree.missing[7, 1] and int(agree.is_issue.sum()) == 1
    assert agree.unconfirmed[7, 1] and int(agree.unconfirmed.sum()) == 1
    assert [(r["image"], r["issue"], r["loss_z"]) for r in agree.evidence(target)] == [(6, "missing", 6.0)]
    assert [(r["image"], r["issue"]) for r in agree.evidence(target, unconfirmed=True)] == [(7, "unconfirmed")]


def test_the_rule_agree_confirms_another_class_at_the_cut_and_never_on_padding():
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1)]) for _ in range(6)]
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 0)]))  # B labelled class 0, the model sees 1
    out, target = batch(images)
    match = box_label_issues(*_located(out, target))
    at_cut = torch.full(target.shape[:2], AGREE_Z)  # every object's loss exactly at the cut
    assert torch.equal(agree_with_loss(match, at_cut).other_class, match.other_class)
    below = agree_with_loss(match, torch.full(target.shape[:2], AGREE_Z - 1e-3))
    assert not below.is_issue.any() and below.unconfirmed[6, 1]
    nan = agree_with_loss(match, torch.full(target.shape[:2], float("nan")))  # no loss read: nothing confirmed
    assert not nan.is_issue.any()


def test_peer_loss_z_scores_a_box_against_its_class_and_size_group():
    """Small boxes cost more loss than large ones when correct: against all boxes every small one looks
    unusual, against its peers (same class and size group) only the one far above the small boxes is."""
    g = torch.Generator().manual_seed(0)
    n = 80
    given = torch.zeros(n, 1, dtype=torch.long)
    size_bin = torch.cat([torch.zeros(40, 1, dtype=torch.long), torch.ones(40, 1, dtype=torch.long)])
    loss = torch.cat([3.0 + 0.1 * torch.randn(40, 1, generator=g), 1.0 + 0.1 * torch.randn(40, 1, generator=g)])
    loss[5, 0] = 4.5  # far above the other small boxes
    z = peer_loss_z(loss, given, size_bin, min_peers=20)
    assert float(z[5, 0]) > 5 and int((z >= Z_THRESHOLD).sum()) == 1
    pooled = peer_loss_z(loss, given, size_bin, min_peers=41)  # groups of 40 too small: all boxes, as robust_z
    assert int((pooled[:40] >= AGREE_Z).sum()) == 40
    padded = peer_loss_z(torch.full((2, 1), float("nan")), torch.full((2, 1), -1), torch.full((2, 1), -1))
    assert torch.isnan(padded).all()


def test_the_rule_peers_cuts_missing_at_3_5_and_judges_unmatched_boxes_by_the_loss_alone():
    """Against the rule "agree": a *missing* flag needs the loss check's z 3.5 (the flag at z 3 is
    unconfirmed); a box no prediction matches is flagged *missing* by its loss alone at z 3.5 (by_loss),
    another at z 3 stays unjudged; *another class* still needs z 2 only."""
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1), (SMALL, 0)]) for _ in range(6)]
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (EMPTY, 1), (SMALL, 0)]))  # B moved: missing
    images.append(([(A, 0, 0.7), (B, 1, 0.6)], [(A, 1), (B, 1), (SMALL, 0)]))  # A given class 1: another class
    out, target = batch(images)
    match = box_label_issues(*_located(out, target))
    assert match.missing[6, 1] and match.other_class[7, 0] and match.abstained[:, 2].all()
    z = torch.zeros(target.shape[:2])
    z[6, 1], z[7, 0], z[0, 2], z[1, 2] = 3.0, 2.0, 3.5, 3.0
    agree = agree_with_loss(match, z)
    assert agree.missing[6, 1] and agree.other_class[7, 0] and agree.by_loss is None
    split = agree_with_loss(match, z, missing_z=Z_THRESHOLD, unmatched_z=Z_THRESHOLD)
    assert not split.missing[6, 1] and split.unconfirmed[6, 1] and split.other_class[7, 0]
    assert split.missing[0, 2] and split.by_loss[0, 2] and not split.missing[1, 2] and int(split.by_loss.sum()) == 1
    assert int(split.is_issue.sum()) == 2
    rows = {(r["image"], r["object"]): r for r in split.evidence(target)}
    assert rows[(0, 2)]["issue"] == "missing" and rows[(0, 2)]["by_loss"] and not rows[(7, 0)]["by_loss"]


def test_agree_with_peers_flags_the_unmatched_box_whose_loss_is_extreme_among_its_peers():
    """The small class-0 boxes no prediction matches all cost a high loss (their own group's level); the
    one whose loss is far above theirs is flagged by the loss alone, the others are not, and the
    correct, matched boxes (a lower loss level) are not either."""
    images = [([(A, 0, 0.7), (B, 1, 0.6)], [(A, 0), (B, 1), (SMALL, 0)]) for _ in range(30)]
    out, target = batch(images)
    issues = box_label_issues(*_located(out, target))
    g = torch.Generator().manual_seed(1)
    loss = 1.0 + 0.1 * torch.randn(target.shape[:2], generator=g)
    loss[:, 2] += 3.0  # small boxes: high loss when correct
    loss[4, 2] = 6.0
    peers = agree_with_peers(issues, loss, min_peers=20)
    assert peers.by_loss[4, 2] and peers.missing[4, 2] and int(peers.is_issue.sum()) == 1
