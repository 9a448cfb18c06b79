import pytest
import torch

from trainground.boxes import box_iou, generalized_box_iou
from trainground.errors import ConfigError
from trainground.losses.detection import DetectionLoss, assign, sigmoid_focal_loss
from trainground.models.detection import GridDetectionHead, decode_detections


def test_giou_by_hand():
    a = torch.tensor([0.0, 0, 2, 2])
    assert generalized_box_iou(a, a).item() == pytest.approx(1.0)
    # disjoint boxes side by side with a gap: IoU 0, hull 2x5=10, union 8 -> GIoU = -(10-8)/10
    b = torch.tensor([3.0, 0, 5, 2])
    assert box_iou(a, b).item() == 0.0
    assert generalized_box_iou(a, b).item() == pytest.approx(-0.2)
    # half overlap: inter 2, union 6, hull 6 -> 1/3
    assert generalized_box_iou(a, torch.tensor([1.0, 0, 3, 2])).item() == pytest.approx(1 / 3)
    assert box_iou(a[None, None], torch.stack([a, b])[None]).shape == (1, 2)


def test_focal_loss_reduces_to_bce_with_gamma_zero_and_alpha_half():
    logits, targets = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([1.0, 0.0, 1.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=0.5, gamma=0.0), 0.5 * bce)
    # an easy example weighs less than with BCE
    assert (sigmoid_focal_loss(logits, targets) < bce).all()


def test_assignment_puts_each_object_in_the_cell_of_its_centre():
    target = torch.tensor([[[0, 0, 8, 8, 1], [20, 4, 28, 12, 3], [0, 0, 0, 0, -1]]], dtype=torch.float32)
    a = assign(target, grid=(8, 8), stride=4, num_classes=4)
    # centre (4, 4) -> row 1, col 1 -> cell 9; centre (24, 8) -> row 2, col 6 -> cell 22
    assert a.cell[0, :2].tolist() == [9, 22] and a.valid[0].tolist() == [True, True, False]
    assert a.positive.sum() == 2 and a.cls_target[0, 9, 1] == 1 and a.cls_target[0, 22, 3] == 1
    assert a.cls_target.sum() == 2
    with pytest.raises(ConfigError, match="class id"):
        assign(target + torch.tensor([0, 0, 0, 0, 5.0]), grid=(8, 8), stride=4, num_classes=4)


def _perfect_output(target, grid=(8, 8), num_classes=4):
    a = assign(target, grid=grid, stride=4, num_classes=num_classes)
    logits = torch.where(a.cls_target > 0, 20.0, -20.0)
    return torch.cat([a.box_target, logits], dim=-1)


def test_a_perfect_prediction_has_near_zero_loss_and_a_wrong_box_stands_out():
    target = torch.tensor([[[0, 0, 8, 8, 1], [20, 4, 28, 12, 3]]], dtype=torch.float32)
    loss = DetectionLoss(4, grid=(8, 8), stride=4)
    out = _perfect_output(target)
    assert loss(out, target).item() < 1e-6
    wrong = target.clone()
    wrong[0, 1, :4] = torch.tensor([4.0, 20, 12, 28])  # the label says the object is elsewhere
    per = loss.per_object(out, wrong)
    assert per[0, 0] < 1e-6 and per[0, 1] > 10
    assert loss(out, wrong) > 1


def test_head_output_layout_trains_toward_a_box_and_decodes_it():
    torch.manual_seed(0)
    head = GridDetectionHead(8, 2, stride=4)
    features = torch.randn(1, 8, 8, 8)
    target = torch.tensor([[[8, 8, 16, 20, 1]]], dtype=torch.float32)
    loss_fn = DetectionLoss(2, grid=(8, 8), stride=4)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    first = None
    for _ in range(150):
        loss = loss_fn(head(features), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    det = decode_detections(head(features), grid=(8, 8), score_threshold=0.3)[0]
    assert det["labels"][0] == 1 and box_iou(det["boxes"][0], target[0, 0, :4]) > 0.7
    with pytest.raises(ConfigError, match="detection output"):
        loss_fn(torch.zeros(1, 10, 6), target)


def test_class_margin_is_negative_for_an_object_given_the_class_the_cell_does_not_show():
    target = torch.tensor([[[0, 0, 8, 8, 1], [20, 4, 28, 12, 3], [0, 0, 0, 0, -1]]], dtype=torch.float32)
    out = _perfect_output(target)
    swapped = target.clone()
    swapped[0, 1, 4] = 0.0
    margin = DetectionLoss(4, grid=(8, 8), stride=4).class_margin(out, swapped)
    assert margin[0, 0] > 0.99 and margin[0, 1] < -0.99 and torch.isnan(margin[0, 2])
