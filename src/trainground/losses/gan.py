"""Adversarial losses (hinge, non-saturating) and the GAN game for ``fit_two_player``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GanLoss = Literal["hinge", "nonsaturating"]


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: GanLoss) -> Tensor:
    """The discriminator's batch-mean loss; logits ``[B]`` or ``[B, heads]`` (heads averaged).

    ``hinge``: ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]`` (Lim & Ye 2017; Miyato et al. 2018).
    ``nonsaturating``: the logistic loss ``softplus(-D(x)) + softplus(D(G(z)))`` (Goodfellow et al. 2014).
    """
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; known: hinge, nonsaturating")


def generator_loss(fake_logits: Tensor, kind: GanLoss) -> Tensor:
    """The generator's batch-mean loss: ``-E[D(G(z))]`` (hinge) or ``softplus(-D(G(z)))`` (non-saturating,
    the ``-log D`` trick that keeps the gradient alive while the discriminator wins).

    References:
        Goodfellow et al. Generative Adversarial Nets. NeurIPS 2014 (non-saturating loss);
        Lim & Ye. Geometric GAN. 2017 (hinge loss).
    """
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; known: hinge, nonsaturating")


@dataclass
class GANGame:
    """The GAN objective for ``trainground.engine.fit_two_player``: players named ``discriminator``
    and ``generator``; the generator maps ``[B, latent_dim]`` noise to images like the batch's ``x``.

    Noise is drawn from torch's global generator (checkpointed by the engine, so resume is exact).
    The discriminator's fake batch is generated without a graph (detached): its step never
    back-propagates into the generator.
    """

    latent_dim: int
    kind: GanLoss = "hinge"
    discriminator: str = "discriminator"
    generator: str = "generator"

    def noise(self, n: int, device: torch.device) -> Tensor:
        return torch.randn(n, self.latent_dim, device=device)

    def loss(self, player: str, batch: tuple[Tensor, Tensor, Tensor], models: Mapping[str, nn.Module]) -> Tensor:
        x = batch[1]
        d, g = models[self.discriminator], models[self.generator]
        z = self.noise(len(x), x.device)
        if player == self.discriminator:
            with torch.no_grad():
                fake = g(z)
            return discriminator_loss(d(x), d(fake), self.kind)
        if player == self.generator:
            return generator_loss(d(g(z)), self.kind)
        raise ValueError(f"GANGame has no player {player!r}")
