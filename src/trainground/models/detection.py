"""A small anchor-free detection head on a coarse feature grid, and its decoding.

Output layout (what ``losses.detection.DetectionLoss`` reads): ``[N, H*W, 4 + C]``, per cell
(row-major) a box ``(x1, y1, x2, y2)`` in pixels decoded from the cell centre and four
distances (FCOS's ``l, t, r, b``), then ``C`` class logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Initial class logit: sigmoid(-4.6) = 0.01, RetinaNet's prior, so the many empty cells do
# not swamp the first steps with a large focal loss.
_PRIOR_LOGIT = -4.6


class GridDetectionHead(nn.Module):
    """Per-cell class logits and box distances from a ``[N, F, H, W]`` feature map.

    Args:
        in_channels: feature channels ``F``.
        num_classes: object classes ``C``.
        stride: pixels per cell (input side / grid side).
        hidden: channels of the 3x3 conv before the two 1x1 outputs.

    References:
        Tian, Shen, Chen, He. "FCOS: Fully Convolutional One-Stage Object Detection." ICCV 2019.
    """

    def __init__(self, in_channels: int, num_classes: int, *, stride: float, hidden: int = 32) -> None:
        super().__init__()
        self.num_classes, self.stride = num_classes, float(stride)
        self.trunk = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU())
        self.cls = nn.Conv2d(hidden, num_classes, 1)
        self.box = nn.Conv2d(hidden, 4, 1)
        nn.init.constant_(self.cls.bias, _PRIOR_LOGIT)

    def forward(self, features: Tensor) -> Tensor:
        _, _, h, w = features.shape
        z = self.trunk(features)
        logits = self.cls(z).flatten(2).transpose(1, 2)  # [N, HW, C]
        # Distances in pixels; softplus keeps them positive, one cell side at a raw value of ~0.5.
        dist = F.softplus(self.box(z)).flatten(2).transpose(1, 2) * self.stride  # [N, HW, 4] = l, t, r, b
        rows, cols = torch.meshgrid(torch.arange(h, device=z.device), torch.arange(w, device=z.device), indexing="ij")
        centre = torch.stack([cols.flatten(), rows.flatten()], dim=1).to(z.dtype).add(0.5).mul(self.stride)  # [HW, 2]
        boxes = torch.cat([centre - dist[..., :2], centre + dist[..., 2:]], dim=-1)
        return torch.cat([boxes, logits], dim=-1)


@torch.no_grad()
def decode_detections(output: Tensor, *, grid: tuple[int, int], score_threshold: float = 0.05,
                      max_detections: int = 20) -> list[dict[str, Tensor]]:
    """Detections per image from a head's output: class peaks on the grid (a cell whose score
    is the largest of its 3x3 neighbourhood for that class, CenterNet's max-pool NMS), above
    ``score_threshold``, the ``max_detections`` best.

    Returns:
        One ``{"boxes": [K, 4], "scores": [K], "labels": [K]}`` per image.
    """
    n, cells, width = output.shape
    h, w = grid
    boxes, scores = output[..., :4], torch.sigmoid(output[..., 4:])  # [N, HW, C]
    c = width - 4
    heat = scores.transpose(1, 2).reshape(n, c, h, w)
    peak = (heat == F.max_pool2d(heat, 3, stride=1, padding=1)).reshape(n, c, cells).transpose(1, 2)
    scores = torch.where(peak & (scores >= score_threshold), scores, torch.zeros_like(scores))
    out = []
    for i in range(n):
        flat = scores[i].flatten()
        k = min(max_detections, int((flat > 0).sum()))
        top = flat.topk(k)
        cell, label = top.indices // c, top.indices % c
        out.append({"boxes": boxes[i, cell], "scores": top.values, "labels": label})
    return out
