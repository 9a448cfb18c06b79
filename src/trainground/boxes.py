"""Axis-aligned box geometry on tensors, boxes as ``(x1, y1, x2, y2)`` with ``x2 >= x1``.

Shared by the detection loss (GIoU), the detection head (decoding) and the mAP metric, so
all three measure overlap the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-7


def box_area(boxes: Tensor) -> Tensor:
    """``[..., 4] -> [...]`` areas (0 for a degenerate box)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(0)


def _intersection_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp_min(0).prod(dim=-1)
    return inter, box_area(a) + box_area(b) - inter


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of boxes paired by broadcasting (``[..., 4]`` each).

    For the pairwise ``[N, M]`` matrix pass ``a[:, None]`` and ``b[None]``.
    """
    inter, union = _intersection_union(a, b)
    return inter / union.clamp_min(_EPS)


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """GIoU of boxes paired by broadcasting: ``IoU - (|C| - |A u B|) / |C|`` with ``C`` the
    smallest box enclosing both; in [-1, 1], and informative even when the boxes do not overlap.

    References:
        Rezatofighi, Tsoi, Gwak, Sadeghian, Reid, Savarese. "Generalized Intersection over
        Union: A Metric and a Loss for Bounding Box Regression." CVPR 2019.
        https://arxiv.org/abs/1902.09630
    """
    inter, union = _intersection_union(a, b)
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    hull = (rb - lt).clamp_min(0).prod(dim=-1)
    return inter / union.clamp_min(_EPS) - (hull - union) / hull.clamp_min(_EPS)
