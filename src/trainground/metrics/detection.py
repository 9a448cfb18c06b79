"""Mean average precision for object detection at one IoU threshold (mAP@0.5 by default).

Why not torchmetrics' ``MeanAveragePrecision``: it is only importable with torchvision, and
computes with pycocotools or faster-coco-eval; none of them is a dependency here (no
torchvision in the core). This implementation follows the PASCAL VOC 2010+ rule: per class,
detections sorted by score, each matched greedily to the unmatched ground-truth box of the
same image with the highest IoU >= threshold; AP is the area under the precision-recall
curve with precision made monotone (all-point interpolation). COCO's figure differs
slightly (101 recall points); the tests check hand-computed cases.

References:
    Everingham, Van Gool, Williams, Winn, Zisserman. "The PASCAL Visual Object Classes (VOC)
    Challenge." IJCV 2010 (section 4.2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from trainground.boxes import box_iou


def average_precision(scores: np.ndarray, matched: np.ndarray, num_ground_truth: int) -> float:
    """Area under the monotone precision-recall curve of one class.

    Args:
        scores: ``[D]`` detection scores.
        matched: ``[D]`` whether each detection is a true positive.
        num_ground_truth: ground-truth objects of the class (> 0).
    """
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(matched[order].astype(np.float64))
    fp = np.cumsum(~matched[order])
    recall = np.concatenate([[0.0], tp / num_ground_truth, [1.0]]) if len(order) else np.array([0.0, 1.0])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]]) if len(order) else np.array([1.0, 0.0])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # envelope: best precision at any higher recall
    step = np.flatnonzero(recall[1:] != recall[:-1])
    return float(((recall[step + 1] - recall[step]) * precision[step + 1]).sum())


def match_detections(pred_boxes: Tensor, pred_scores: Tensor, gt_boxes: Tensor, iou_threshold: float) -> np.ndarray:
    """Greedy matching in one image and class: ``[D]`` true-positive flags."""
    matched = np.zeros(len(pred_boxes), dtype=bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return matched
    iou = box_iou(pred_boxes[:, None].float(), gt_boxes[None].float()).cpu().numpy()
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for d in np.argsort(-pred_scores.cpu().numpy(), kind="stable"):
        candidates = np.where(taken, -1.0, iou[d])
        g = int(candidates.argmax())
        if candidates[g] >= iou_threshold:
            taken[g] = matched[d] = True
    return matched


def mean_average_precision(
    predictions: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]], *, iou_threshold: float = 0.5
) -> dict[str, float | dict[int, float]]:
    """mAP over the classes that have ground truth.

    Args:
        predictions: per image ``{"boxes": [D, 4], "scores": [D], "labels": [D]}``.
        targets: per image ``{"boxes": [G, 4], "labels": [G]}``.
        iou_threshold: IoU a detection needs to count as a match.

    Returns:
        ``{"map": mean AP (NaN without any ground truth), "ap_per_class": {class: AP}}``.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    per_class: dict[int, tuple[list[np.ndarray], list[np.ndarray], int]] = {}
    for pred, gt in zip(predictions, targets, strict=True):
        labels = set(gt["labels"].tolist()) | set(pred["labels"].tolist())
        for c in labels:
            p_sel, g_sel = pred["labels"] == c, gt["labels"] == c
            scores, matches, count = per_class.setdefault(c, ([], [], 0))
            scores.append(pred["scores"][p_sel].float().cpu().numpy())
            matches.append(match_detections(pred["boxes"][p_sel], pred["scores"][p_sel], gt["boxes"][g_sel], iou_threshold))
            per_class[c] = (scores, matches, count + int(g_sel.sum()))
    ap = {c: average_precision(np.concatenate(s), np.concatenate(m), n)
          for c, (s, m, n) in sorted(per_class.items()) if n > 0}
    return {"map": float(np.mean(list(ap.values()))) if ap else float("nan"), "ap_per_class": ap}


def padded_targets(target: Tensor) -> list[dict[str, Tensor]]:
    """``[N, M, 5]`` padded ``(x1, y1, x2, y2, class)`` rows (class -1 = padding) -> per-image dicts."""
    keep = target[..., 4] >= 0
    return [{"boxes": t[k, :4].float(), "labels": t[k, 4].long()} for t, k in zip(target, keep, strict=True)]




def object_recall(output: Tensor, target: Tensor, *, iou_threshold: float = 0.5, score_threshold: float = 0.5) -> Tensor:
    """``[N]`` per image, the share of its labelled objects that some confident prediction of
    the same class covers (IoU >= ``iou_threshold``): an additive stand-in for mAP inside the
    training loop (mAP itself does not average over batches). Images without objects count 1.

    Args:
        output: ``[N, K, 4 + C]`` predicted boxes then class logits (``models.detection`` layout).
        target: ``[N, M, 5]`` padded ``(x1, y1, x2, y2, class)``, class -1 for padding.
    """
    boxes, scores = output[..., :4].float(), torch.sigmoid(output[..., 4:].float())  # [N, K, 4], [N, K, C]
    classes = target[..., 4].long()
    valid = classes >= 0
    iou = box_iou(boxes[:, :, None], target[:, None, :, :4].float())  # [N, K, M]
    confident = scores.gather(2, classes.clamp_min(0)[:, None, :].expand(-1, boxes.shape[1], -1)) >= score_threshold
    found = ((iou >= iou_threshold) & confident).any(dim=1) & valid  # [N, M]
    count = valid.sum(dim=1)
    return torch.where(count > 0, found.sum(dim=1) / count.clamp_min(1), torch.ones_like(count, dtype=torch.float32))


__all__ = ["average_precision", "match_detections", "mean_average_precision", "object_recall", "padded_targets"]
