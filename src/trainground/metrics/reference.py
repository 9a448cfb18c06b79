"""The feature extractor of the generative metrics: a small CNN classifier trained on the real images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainground.metrics.coverage import mode_coverage
from trainground.metrics.frechet import frechet_distance
from trainground.metrics.precision_recall import precision_recall
from trainground.metrics.ssim import mean_pairwise_ssim, ssim


class ReferenceClassifier(nn.Module):
    """Two conv blocks and a 64-unit penultimate layer: ``features(x)`` for precision/recall and
    the Frechet distance, ``forward(x)`` logits for mode coverage. Any square image side works
    (adaptive pooling to 4 x 4)."""

    def __init__(self, channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(32 * 16, width), nn.ReLU(),
        )
        self.head = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def train_reference_classifier(images: Tensor, labels: Tensor, *, epochs: int = 15, batch_size: int = 64,
                               lr: float = 2e-3, seed: int = 0) -> ReferenceClassifier:
    """A :class:`ReferenceClassifier` trained on real ``images`` ``[N, C, H, W]`` and ``labels``.

    Deterministic for a seed (its own generator; the global RNGs are left as they were). It is
    the metrics' yardstick, so it is trained once on the real data and never on generated data.
    """
    y = torch.as_tensor(labels).long()
    num_classes = int(y.max()) + 1
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ReferenceClassifier(images.shape[1], num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(y), generator=gen).split(batch_size):
            opt.zero_grad()
            nn.functional.cross_entropy(model(images[rows]), y[rows]).backward()
            opt.step()
    return model.eval()


@dataclass
class GenerativeEvaluator:
    """All generative metrics of a set of samples against the real data, through one classifier.

    ::

        evaluator = GenerativeEvaluator.fit(real_images, real_labels, data_range=2.0)
        scores = evaluator.evaluate(generated_images)   # precision, recall, f1, frechet, ...

    Args:
        classifier: trained on the real data (:func:`train_reference_classifier`).
        real: real images ``[N, C, H, W]`` (the reference set).
        num_classes: classes (modes) of the real data.
        data_range: pixel range for SSIM (2 for [-1, 1]).
        k: neighbours of the precision/recall balls.
    """

    classifier: nn.Module
    real: Tensor
    num_classes: int
    data_range: float = 2.0
    k: int = 3

    def __post_init__(self) -> None:
        self._real_features = self._features(self.real)

    @classmethod
    def fit(cls, real: Tensor, labels: Tensor, *, data_range: float = 2.0, seed: int = 0,
            epochs: int = 15) -> GenerativeEvaluator:
        classifier = train_reference_classifier(real, labels, seed=seed, epochs=epochs)
        return cls(classifier, real, int(torch.as_tensor(labels).max()) + 1, data_range=data_range)

    @torch.no_grad()
    def _features(self, images: Tensor) -> Tensor:
        return torch.cat([self.classifier.features(b.float()) for b in images.split(512)])

    @torch.no_grad()
    def accuracy(self, images: Tensor, labels: Tensor) -> float:
        pred = torch.cat([self.classifier(b.float()).argmax(1) for b in images.split(512)])
        return float((pred == torch.as_tensor(labels)).double().mean())

    @torch.no_grad()
    def evaluate(self, fake: Tensor) -> dict[str, float]:
        """``precision``, ``recall``, ``f1``, ``frechet``, ``mode_coverage``, ``mode_kl`` and
        ``ssim_intra`` (mean SSIM between generated samples; compare with :meth:`real_ssim_intra`) and
        ``ssim_nearest_real`` (mean SSIM of each sample with its nearest real image in feature space)."""
        fake = fake.detach().cpu().float()
        feats = self._features(fake)
        pred = torch.cat([self.classifier.head(f) for f in feats.split(512)]).argmax(1).numpy()
        scores = precision_recall(self._real_features, feats, k=self.k).to_dict()
        scores["frechet"] = frechet_distance(self._real_features, feats)
        scores.update(mode_coverage(pred, self.num_classes).to_dict())
        scores["ssim_intra"] = mean_pairwise_ssim(fake, data_range=self.data_range)
        # Reference-based SSIM where an unconditional generator has no pairs: each sample against
        # its nearest real image in feature space (higher = closer to some real digit).
        nearest = torch.cat([torch.cdist(f.double(), self._real_features.double()).argmin(1) for f in feats.split(512)])
        scores["ssim_nearest_real"] = float(ssim(fake, self.real[nearest].float(), data_range=self.data_range).mean())
        return scores

    def real_ssim_intra(self) -> float:
        """The mean pairwise SSIM of the real images: the diversity level a generator should match."""
        return mean_pairwise_ssim(self.real, data_range=self.data_range)
