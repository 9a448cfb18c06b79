"""A small image + text fusion model: a score from both modalities, objects from the image.

``FusionModel(x)`` takes ``{"image": [N, 3, S, S], "tokens": [N, L]}`` and returns
``{"score": [N], "boxes": [N, H*W, 4 + C]}`` (the detection layout of
``models.detection``). With ``modalities=("image",)`` or ``("text",)`` the same class is the
single-modality baseline (a text-only model has no ``boxes`` output).

:meth:`FusionModel.modality_groups` gives the parameters of each modality's encoder, the
``groups`` of ``gradients.TaskGradients`` for per-modality clipping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from trainground.models.detection import GridDetectionHead


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    # Group norm: a normalised encoder trains at a large step in a few epochs, and unlike batch
    # norm it computes the same thing in training and evaluation (the score head sums the
    # detector's probabilities over the grid, which magnifies any train/eval shift).
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(4, cout), nn.ReLU()]


class ImageEncoder(nn.Module):
    """Three 3x3 conv + group-norm + ReLU, two of stride 2, then ``extra_layers`` more at the
    output resolution: ``[N, 3, S, S] -> [N, width * 4, S/4, S/4]``."""

    stride = 4

    def __init__(self, width: int = 16, extra_layers: int = 0) -> None:
        super().__init__()
        self.out_channels = width * 4
        self.net = nn.Sequential(
            # Stride 2 first: the full-resolution layer is where a small CNN spends most of its time.
            *_conv(3, width, 2), *_conv(width, width * 2, 1), *_conv(width * 2, width * 4, 2),
            # At the grid's resolution (cheap): each widens the receptive field by one cell per side.
            *(m for _ in range(extra_layers) for m in _conv(width * 4, width * 4, 1)),
        )

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)


class BagOfEmbeddings(nn.Module):
    """Mean of word embeddings (padding id 0 ignored), then a ReLU layer.

    Word order is lost; the products grammar carries its signal in which words occur
    (sentiment adjectives, object names, counts), so a bag suffices there and trains in
    seconds from scratch.
    """

    def __init__(self, vocab_size: int, dim: int = 32) -> None:
        super().__init__()
        self.out_features = dim
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())

    def forward(self, tokens: Tensor) -> Tensor:
        return self.proj(self.embed(tokens))


class FusionModel(nn.Module):
    """Image encoder + text encoder, a fused score head, a detection head on the image features.

    The score head reads the detector's expected object count per class (a pooled summary of
    the image that the score and the detection share) and the text features. Pooled encoder
    features instead trained far slower here: counting objects from raw pooled features is
    what the detection task already teaches.

    Args:
        vocab_size: text vocabulary size (``data.products.Vocabulary``).
        num_classes: object classes of the detection head.
        image_size: input side ``S`` (a multiple of 4).
        modalities: the encoders in use: ``("image", "text")`` (fusion), ``("image",)`` or ``("text",)``.
        width: image encoder's first-layer channels.
        text_dim: text embedding size.
        extra_layers: image encoder's conv layers after the last stride (``ImageEncoder``).
    """

    def __init__(self, *, vocab_size: int, num_classes: int, image_size: int = 32,
                 modalities: Sequence[str] = ("image", "text"), width: int = 16, text_dim: int = 32,
                 extra_layers: int = 0) -> None:
        super().__init__()
        unknown = set(modalities) - {"image", "text"}
        if unknown or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of ('image', 'text'), got {tuple(modalities)}")
        self.modalities = tuple(m for m in ("image", "text") if m in modalities)
        fused = 0
        if "image" in self.modalities:
            self.image = ImageEncoder(width, extra_layers)
            self.grid = (image_size // ImageEncoder.stride,) * 2
            self.detector = GridDetectionHead(self.image.out_channels, num_classes, stride=ImageEncoder.stride)
            fused += num_classes
        if "text" in self.modalities:
            self.text = BagOfEmbeddings(vocab_size, text_dim)
            fused += self.text.out_features
        self.score_head = nn.Sequential(nn.Linear(fused, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        parts, out = [], {}
        if "image" in self.modalities:
            features = self.image(x["image"])
            out["boxes"] = self.detector(features)
            # The image's part of the score: the expected object count per class (the sum of the
            # detector's class probabilities over the grid). The score's gradient flows back
            # through it into the detection head and the image encoder, which both tasks share.
            parts.append(torch.sigmoid(out["boxes"][..., 4:]).sum(dim=1))
        if "text" in self.modalities:
            parts.append(self.text(x["tokens"]))
        out = {"score": self.score_head(torch.cat(parts, dim=1)).squeeze(1), **out}
        return out

    def modality_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every parameter by the modality it reads: ``image`` (image encoder and detection
        head), ``text`` (text encoder) and ``fusion`` (the score head, which reads both; a
        single-modality model puts its score head in its one modality's group)."""
        groups: dict[str, list[nn.Parameter]] = {}
        if "image" in self.modalities:
            groups["image"] = [*self.image.parameters(), *self.detector.parameters()]
        if "text" in self.modalities:
            groups["text"] = list(self.text.parameters())
        head = list(self.score_head.parameters())
        if len(self.modalities) == 2:
            groups["fusion"] = head
        else:
            groups[self.modalities[0]] += head
        return groups
