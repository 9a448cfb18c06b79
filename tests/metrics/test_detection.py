import math

import numpy as np
import pytest
import torch

from trainground.metrics import (
    average_precision,
    mean_average_precision,
    padded_targets,
)


def _pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels)}


def _gt(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long)}


def test_perfect_detections_give_one():
    gt = [_gt([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])]
    pred = [_pred([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 1])]
    assert mean_average_precision(pred, gt)["map"] == 1.0


def test_hand_computed_precision_recall_curve():
    # one class, 3 objects in two images; detections by score: TP, FP, TP, (miss one object)
    # precision/recall points: (1, 1/3), (1/2, 1/3), (2/3, 2/3); envelope: 1 up to 1/3, 2/3 up to 2/3
    # AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    gt = [_gt([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]), _gt([[0, 0, 8, 8]], [0])]
    pred = [_pred([[0, 0, 10, 10], [40, 40, 50, 50]], [0.9, 0.8], [0, 0]), _pred([[0, 0, 8, 9]], [0.7], [0])]
    out = mean_average_precision(pred, gt)
    assert out["map"] == pytest.approx(5 / 9)


def test_iou_threshold_duplicates_and_class_mismatch():
    gt = [_gt([[0, 0, 10, 10]], [0])]
    half = [_pred([[0, 0, 10, 5]], [0.9], [0])]  # IoU 0.5 exactly: a match at 0.5, not above it
    assert mean_average_precision(half, gt, iou_threshold=0.5)["map"] == 1.0
    assert mean_average_precision(half, gt, iou_threshold=0.51)["map"] == 0.0
    # the second detection of the same object is a false positive, after the true one: AP stays 1
    dup = [_pred([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.5], [0, 0])]
    assert mean_average_precision(dup, gt)["map"] == 1.0
    # a duplicate scored above the match: precision 1/2 at recall 1 -> AP 1/2
    dup_first = [_pred([[0, 0, 10, 10], [30, 30, 40, 40]], [0.5, 0.9], [0, 0])]
    assert mean_average_precision(dup_first, gt)["map"] == pytest.approx(0.5)
    wrong_class = [_pred([[0, 0, 10, 10]], [0.9], [1])]
    out = mean_average_precision(wrong_class, gt)
    assert out["map"] == 0.0 and set(out["ap_per_class"]) == {0}  # a class without ground truth is not averaged


def test_no_detections_and_no_ground_truth():
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), 3) == 0.0
    empty = [_pred(np.zeros((0, 4)), [], [])]
    assert math.isnan(mean_average_precision(empty, [_gt(np.zeros((0, 4)), [])])["map"])


def test_padded_targets_drop_padding_rows():
    t = torch.tensor([[[0, 0, 4, 4, 2], [0, 0, 0, 0, -1]]], dtype=torch.float32)
    out = padded_targets(t)
    assert out[0]["labels"].tolist() == [2] and out[0]["boxes"].shape == (1, 4)
