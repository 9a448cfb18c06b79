"""SSIM: structural similarity of image pairs, and the mean SSIM within a set as a diversity measure."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainground.metrics._arrays import as_images


def _gaussian_window(size: int, sigma: float, channels: int) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: Tensor | np.ndarray, b: Tensor | np.ndarray, *, data_range: float, window: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """SSIM of each pair ``(a[i], b[i])``: ``[N]`` values in [-1, 1] (1: identical).

    Local means, variances and covariance under a Gaussian window (11 x 11, sigma 1.5), over the
    positions where the window fits inside the image (as scikit-image and torchmetrics do), averaged
    over positions and channels. A window larger than the image is shrunk to the image's side
    (an odd size), so 8 x 8 images still get a score.

    Args:
        a, b: images ``[N, C, H, W]`` (or ``[N, H, W]``) of equal shape.
        data_range: max - min of the pixel scale (2 for images in [-1, 1], 255 for bytes).

    References:
        Wang, Bovik, Sheikh, Simoncelli. Image Quality Assessment: From Error Visibility to
        Structural Similarity. IEEE TIP 13(4), 2004.
    """
    x, y = as_images(a, "a"), as_images(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    side = min(x.shape[-2:])
    size = min(window, side if side % 2 else side - 1)
    w = _gaussian_window(size, sigma, x.shape[1])
    groups = x.shape[1]

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=groups)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


def mean_pairwise_ssim(images: Tensor | np.ndarray, *, data_range: float, pairs: int = 2000,
                       seed: int = 0) -> float:
    """Mean SSIM over random pairs of distinct images of one set: high = the set lacks diversity.

    A generator that collapses onto a few outputs gives pairs of near-identical images and a
    mean near 1; real data sets a reference level (compute the same on real images).

    Args:
        images: ``[N, C, H, W]`` (or ``[N, H, W]``), N >= 2.
        pairs: random pairs drawn (all pairs when there are fewer).
        seed: of the pair draw.
    """
    x = as_images(images, "images")
    n = x.shape[0]
    if n < 2:
        raise ValueError("mean_pairwise_ssim needs at least 2 images")
    gen = torch.Generator().manual_seed(seed)
    if n * (n - 1) // 2 <= pairs:
        i, j = torch.triu_indices(n, n, offset=1)
    else:
        i = torch.randint(0, n, (pairs,), generator=gen)
        j = (i + torch.randint(1, n, (pairs,), generator=gen)) % n  # never i itself
    return float(ssim(x[i], x[j], data_range=data_range).mean())
