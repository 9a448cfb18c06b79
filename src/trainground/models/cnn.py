"""A small convolutional network for image folders."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from trainground.models.standardize import Standardize


class SmallCNN(nn.Module):
    """Standardize -> [Conv3x3 -> BatchNorm -> ReLU -> MaxPool2] per stage -> GAP -> Linear.

    Global average pooling makes the head independent of the image size, so one
    architecture serves 8x8 digits and 64x64 photos. A stage stops pooling once the
    feature map is 1 pixel wide, so tiny images keep a valid shape.

    Args:
        in_channels: 1 for grayscale, 3 for RGB.
        num_classes: number of output logits.
        channels: output channels of each stage.
        dropout: dropout before the head (0 disables it).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        image_size: tuple[int, int],
        channels: tuple[int, ...] = (32, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.image_size, self.channels, self.dropout = tuple(image_size), tuple(channels), dropout
        self.normalize = Standardize((in_channels, 1, 1))
        layers: list[nn.Module] = []
        width, side = in_channels, min(image_size)
        for c in self.channels:
            layers += [nn.Conv2d(width, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if side >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            width = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))

    def fit_input_stats(self, x: Tensor) -> SmallCNN:
        """Standardise each channel with the statistics of the training images ``x``."""
        self.normalize.fit(x, dims=(0, 2, 3))
        return self

    def spec(self) -> dict[str, Any]:
        return {
            "name": "cnn",
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "image_size": list(self.image_size),
            "channels": list(self.channels),
            "dropout": self.dropout,
        }
