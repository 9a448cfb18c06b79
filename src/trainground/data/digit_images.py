"""scikit-learn's 8x8 digits as images for image models and GANs, upsampled to a chosen side."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def digit_images(side: int = 16) -> tuple[Tensor, Tensor]:
    """The 1,797 bundled digits as ``[N, 1, side, side]`` float32 images in [-1, 1], and labels ``[N]``.

    Upsampled bilinearly from 8 x 8 (no download: the data ship with scikit-learn).
    """
    from sklearn.datasets import load_digits

    if side < 8:
        raise ValueError(f"side must be >= 8 (the digits are 8 x 8), got {side}")
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1]
    if side != 8:
        x = F.interpolate(x, size=side, mode="bilinear", align_corners=False).clamp(-1, 1)
    return x, torch.tensor(digits.target, dtype=torch.int64)
