"""Anchor-free detection loss on a coarse grid: sigmoid focal classification + GIoU boxes.

The layout the loss reads (written by ``models.detection.GridDetectionHead``):

- output ``[N, H*W, 4 + C]``: per grid cell (row-major, cell ``k = row * W + col``, centre
  ``((col + 0.5) * stride, (row + 0.5) * stride)``) a decoded box ``(x1, y1, x2, y2)`` in
  pixels, then ``C`` class logits (independent sigmoids: a cell may hold nothing);
- target ``[N, M, 5]``: up to ``M`` objects per image, ``(x1, y1, x2, y2, class)`` with class
  ``-1`` for padding rows.

Each object is assigned to the one cell that holds its centre (CenterNet's rule on a coarse
grid); that cell must predict the object's class and box, every other cell predicts no class.
Two objects whose centres fall in one cell: one of them is kept (rare when objects are larger
than a cell and overlap little, as in ``data.products``).

References:
    Lin, Goyal, Girshick, He, Dollar. "Focal Loss for Dense Object Detection." ICCV 2017.
    Zhou, Wang, Krahenbuhl. "Objects as Points." 2019. https://arxiv.org/abs/1904.07850
    Tian, Shen, Chen, He. "FCOS: Fully Convolutional One-Stage Object Detection." ICCV 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainground.boxes import generalized_box_iou
from trainground.errors import ConfigError


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, *, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise binary focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (not reduced).

    References:
        Lin et al. 2017 (equation 5). https://arxiv.org/abs/1708.02002
    """
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * ce


@dataclass(frozen=True)
class Assignment:
    """Where each target object lands on the grid.

    Attributes:
        valid: ``[N, M]`` real objects (class >= 0).
        cell: ``[N, M]`` the cell holding each object's centre (0 for padding).
        classes: ``[N, M]`` class ids (0 for padding).
        cls_target: ``[N, H*W, C]`` 1 at each object's (cell, class).
        positive: ``[N, H*W]`` cells that hold an object.
        box_target: ``[N, H*W, 4]`` the object box of each positive cell.
    """

    valid: Tensor
    cell: Tensor
    classes: Tensor
    cls_target: Tensor
    positive: Tensor
    box_target: Tensor


def assign(target: Tensor, *, grid: tuple[int, int], stride: float, num_classes: int) -> Assignment:
    """Assign every object of ``target`` (``[N, M, 5]``) to the grid cell holding its centre."""
    n, m, _ = target.shape
    h, w = grid
    boxes, classes = target[..., :4].float(), target[..., 4].long()
    valid = classes >= 0
    if bool((classes >= num_classes).any()):
        raise ConfigError(f"detection target has a class id >= num_classes ({num_classes})")
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    col = (centre[..., 0] / stride).floor().long().clamp(0, w - 1)
    row = (centre[..., 1] / stride).floor().long().clamp(0, h - 1)
    cell = torch.where(valid, row * w + col, torch.zeros_like(col))
    cls = classes.clamp_min(0)
    image = torch.arange(n, device=target.device)[:, None].expand(n, m)
    cls_target = torch.zeros(n, h * w, num_classes, device=target.device)
    positive = torch.zeros(n, h * w, dtype=torch.bool, device=target.device)
    box_target = torch.zeros(n, h * w, 4, device=target.device)
    sel = (image[valid], cell[valid])
    cls_target[(*sel, cls[valid])] = 1.0
    positive[sel] = True
    box_target[sel] = boxes[valid]
    return Assignment(valid, cell, cls, cls_target, positive, box_target)


class DetectionLoss(nn.Module):
    """Focal classification over every cell + ``box_weight * (1 - GIoU)`` on the object cells.

    Both terms are normalised by the number of objects in the batch (at least 1), as in
    RetinaNet/FCOS, so the loss does not depend on the grid size.

    Args:
        num_classes: object classes ``C``.
        grid: ``(H, W)`` cells of the head's output.
        stride: pixels per cell.
        box_weight: weight of the GIoU term.
        alpha, gamma: focal loss parameters (Lin et al.'s 0.25 and 2).
    """

    def __init__(self, num_classes: int, *, grid: tuple[int, int], stride: float, box_weight: float = 1.0,
                 alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if num_classes < 1 or min(grid) < 1 or stride <= 0:
            raise ConfigError(f"DetectionLoss: num_classes, grid and stride must be positive; got {num_classes}, {grid}, {stride}")
        self.num_classes, self.grid, self.stride = num_classes, tuple(grid), float(stride)
        self.box_weight, self.alpha, self.gamma = box_weight, alpha, gamma

    def _split(self, output: Tensor) -> tuple[Tensor, Tensor]:
        cells = self.grid[0] * self.grid[1]
        if output.ndim != 3 or output.shape[1] != cells or output.shape[2] != 4 + self.num_classes:
            raise ConfigError(f"detection output must be [N, {cells}, {4 + self.num_classes}], got {tuple(output.shape)}")
        return output[..., :4], output[..., 4:]

    def assign(self, target: Tensor) -> Assignment:
        return assign(target, grid=self.grid, stride=self.stride, num_classes=self.num_classes)

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        boxes, logits = self._split(output)
        a = self.assign(target)
        count = a.positive.sum().clamp_min(1)
        cls = sigmoid_focal_loss(logits, a.cls_target, alpha=self.alpha, gamma=self.gamma).sum()
        giou = generalized_box_iou(boxes[a.positive], a.box_target[a.positive])
        return (cls + self.box_weight * (1 - giou).sum()) / count

    @torch.no_grad()
    def per_object(self, output: Tensor, target: Tensor) -> Tensor:
        """``[N, M]`` each object's own loss (NaN for padding): ``-log p(class)`` at its cell
        plus ``box_weight * (1 - GIoU)`` of that cell's box. High for an object the model
        does not see where the label says it is (a wrong box or class)."""
        boxes, logits = self._split(output)
        a = self.assign(target)
        image = torch.arange(len(target), device=target.device)[:, None]
        logit = logits[image, a.cell, a.classes]
        giou = generalized_box_iou(boxes[image, a.cell], target[..., :4].float())
        loss = F.softplus(-logit) + self.box_weight * (1 - giou)  # softplus(-z) = -log sigmoid(z)
        return torch.where(a.valid, loss, torch.full_like(loss, float("nan")))

    @torch.no_grad()
    def class_margin(self, output: Tensor, target: Tensor) -> Tensor:
        """``[N, M]`` per object, at its cell: ``p(given class) - max p(other class)`` (NaN for
        padding). Negative when the model sees another class where the label says this one."""
        _, logits = self._split(output)
        a = self.assign(target)
        image = torch.arange(len(target), device=target.device)[:, None]
        p = torch.sigmoid(logits[image, a.cell])  # [N, M, C]
        given = p.gather(2, a.classes[..., None]).squeeze(2)
        others = p.scatter(2, a.classes[..., None], float("-inf")).amax(dim=2)
        return torch.where(a.valid, given - others, torch.full_like(given, float("nan")))
