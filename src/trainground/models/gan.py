"""DCGAN-style generator and a multi-resolution discriminator for small square images."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_side(side: int) -> int:
    if side < 4 or side & (side - 1):
        raise ValueError(f"image side must be a power of two >= 4, got {side}")
    return int(math.log2(side // 4))


class DCGANGenerator(nn.Module):
    """Noise ``[B, latent_dim]`` -> images ``[B, channels, side, side]`` in [-1, 1].

    A linear projection to ``width x 4 x 4``, then one (transposed conv 4x4 stride 2, BatchNorm,
    ReLU) block per doubling of the side, halving the channels, and a 3x3 conv with tanh: the
    DCGAN recipe (BatchNorm in the generator, ReLU inside, tanh out).

    References:
        Radford, Metz, Chintala. Unsupervised Representation Learning with Deep Convolutional
        Generative Adversarial Networks. ICLR 2016.
    """

    def __init__(self, latent_dim: int = 32, *, side: int = 16, channels: int = 1, width: int = 128) -> None:
        super().__init__()
        ups = _check_side(side)
        self.latent_dim, self.side, self.channels, self.width = latent_dim, side, channels, width
        self.project = nn.Sequential(nn.Linear(latent_dim, width * 16), nn.BatchNorm1d(width * 16), nn.ReLU())
        blocks: list[nn.Module] = []
        c = width
        for _ in range(ups):
            blocks += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        self.body = nn.Sequential(*blocks)
        self.out = nn.Conv2d(c, channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(len(z), self.width, 4, 4)
        return self.out(self.body(h)).tanh()

    def spec(self) -> dict[str, object]:
        return {"name": "dcgan_generator", "latent_dim": self.latent_dim, "side": self.side,
                "channels": self.channels, "width": self.width}


class _Head(nn.Module):
    """A DCGAN discriminator for one resolution: conv 3x3, then (conv 4x4 stride 2, LeakyReLU 0.2)
    down to 4 x 4, then one logit."""

    def __init__(self, side: int, channels: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(_check_side(side)):
            layers += [nn.Conv2d(c, c * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c *= 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.logit = nn.Linear(c * 16, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(self.body(x)).squeeze(1)


class MultiResolutionDiscriminator(nn.Module):
    """Judges an image at several resolutions: the full image and its 2x, 4x... average-pooled
    copies, one head each; returns the logits ``[B, heads]`` (the losses average the heads).

    Coarse heads see global shape (is it a digit at all?), the full-resolution head the strokes;
    ``scales=(1,)`` is the ordinary single-resolution discriminator.

    References:
        Wang, Liu, Zhu, Tao, Kautz, Catanzaro. High-Resolution Image Synthesis and Semantic
        Manipulation with Conditional GANs (pix2pixHD, multi-scale discriminators). CVPR 2018.
    """

    def __init__(self, *, side: int = 16, channels: int = 1, width: int = 32, scales: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        scales = tuple(int(s) for s in scales)
        if not scales or any(s < 1 or side % s or side // s < 4 for s in scales):
            raise ValueError(f"scales must divide the side {side} and leave at least 4 pixels, got {scales}")
        self.side, self.channels, self.width, self.scales = side, channels, width, scales
        self.heads = nn.ModuleList(_Head(side // s, channels, width) for s in scales)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([head(x if s == 1 else F.avg_pool2d(x, s)) for s, head in zip(self.scales, self.heads, strict=True)], dim=1)

    def spec(self) -> dict[str, object]:
        return {"name": "multires_discriminator", "side": self.side, "channels": self.channels,
                "width": self.width, "scales": list(self.scales)}

