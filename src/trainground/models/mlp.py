"""A multi-layer perceptron for tables."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from trainground.models.standardize import Standardize


class MLP(nn.Module):
    """Standardize -> [Linear -> ReLU (-> Dropout)] x len(hidden) -> Linear.

    ``embed(x)`` gives the penultimate representation (what the head sees), which the
    monitors and the sample checks read.

    Args:
        in_features: number of (encoded) input features.
        num_classes: number of output logits.
        hidden: width of each hidden layer.
        dropout: dropout probability after each hidden layer (0 disables it).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: tuple[int, ...] = (256, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.num_classes = in_features, num_classes
        self.hidden, self.dropout = tuple(hidden), dropout
        self.normalize = Standardize((in_features,))
        layers: list[nn.Module] = []
        width = in_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))

    def fit_input_stats(self, x: Tensor) -> MLP:
        """Standardise inputs with the statistics of the training features ``x``."""
        self.normalize.fit(x, dims=(0,))
        return self

    def spec(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture (weights excluded)."""
        return {
            "name": "mlp",
            "in_features": self.in_features,
            "num_classes": self.num_classes,
            "hidden": list(self.hidden),
            "dropout": self.dropout,
        }
