"""A GAN on bundled digits through ``fit_two_player``: config, build and train (recipe and benchmark share it)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
from torch.utils.data import TensorDataset

from trainground.bounds import AT_LEAST_ONE, POSITIVE, Range
from trainground.data.digit_images import digit_images
from trainground.engine.callbacks import Callback
from trainground.engine.generative import GeneratorWatcher
from trainground.engine.player_monitors import PlayerLayerMonitor
from trainground.engine.rng import seed_everything
from trainground.engine.rundir import RunDir
from trainground.engine.two_player import Player, TwoPlayerConfig, TwoPlayerResult, fit_two_player
from trainground.gradients import GuardConfig
from trainground.losses.gan import GANGame, GanLoss
from trainground.metrics import GenerativeEvaluator, ReferenceClassifier, train_reference_classifier
from trainground.models.gan import DCGANGenerator, MultiResolutionDiscriminator


@dataclass
class PlayerOptions:
    """One player's optimizer (Adam) and Guard."""

    # DCGAN's Adam: lr 2e-4 and beta1 0.5 (a smaller momentum keeps the players from chasing
    # each other's stale directions), taken as published. (lr 1e-3 let the discriminator win
    # outright on 16 x 16 digits in a first try: its hinge loss went to 0 by epoch 2.)
    lr: Annotated[float, POSITIVE] = 2e-4
    beta1: Annotated[float, Range(ge=0, lt=1)] = 0.5
    beta2: Annotated[float, Range(ge=0, lt=1)] = 0.999
    # Act on every N-th batch (n_critic for the generator).
    every: Annotated[int, AT_LEAST_ONE] = 1
    # The Guard: AMP, accumulation (fixed or adaptive K), clipping, spike skip, trust region.
    # Default for GANs: plain steps (no clipping, no spike skip, no trust region), what won
    # benchmarks/gan.py on 10 seeds it was not chosen on (multires: 0/10 collapsed, F1 0.386 +- 0.134;
    # a global-norm cap of 1.0: 1/10, 0.329 +- 0.099). The default Guard lost there (2/3 runs collapsed
    # with the multi-resolution discriminator): a player's loss moves because the other player
    # learns, its spike skip reads that as a spike, and the rollback that follows resets the
    # generator while the discriminator keeps its lead (see the ablation in benchmarks/README.md).
    # fit_two_player's own default, GuardConfig.for_games() (preset "game": ZClip, nothing read from
    # the loss), collapsed no run (0/6, 0/10, 0/10 held out) but had a lower F1 at 8 epochs (seeds 0-2
    # multires 0.355 vs 0.457; seeds 3-12 0.396 vs 0.476), so plain steps stay the recipe's default.
    guard: GuardConfig = field(default_factory=lambda: guard_preset("none"))


@dataclass
class GanConfig:
    """A DCGAN-style generator against a multi-resolution discriminator on digits upsampled to ``side``."""

    # Image side (power of two >= 8): the 8 x 8 digits are upsampled bilinearly.
    side: Annotated[int, AT_LEAST_ONE] = 16
    # Noise width of the generator.
    latent_dim: Annotated[int, AT_LEAST_ONE] = 32
    # Channels of the generator's first feature map (halved at every doubling of the side).
    generator_width: Annotated[int, AT_LEAST_ONE] = 64
    # Channels of each discriminator head's first conv (doubled at every halving).
    discriminator_width: Annotated[int, AT_LEAST_ONE] = 32
    # Resolutions the discriminator judges: 1 = full image, 2 and 4 = average-pooled copies.
    # [1] is the ordinary single-resolution discriminator.
    scales: tuple[int, ...] = (1, 2, 4)
    # "hinge" (Geometric GAN / SNGAN) or "nonsaturating" (the original -log D trick).
    loss: GanLoss = "hinge"
    # The loop: epochs, batch size, seed of the batch order, checkpoints. 8 epochs: the setting of
    # benchmarks/gan.py (seed 0 of its `none multires` row is this default run).
    train: TwoPlayerConfig = field(default_factory=lambda: TwoPlayerConfig(epochs=8, batch_size=64))
    discriminator: PlayerOptions = field(default_factory=PlayerOptions)
    generator: PlayerOptions = field(default_factory=PlayerOptions)
    # Seed of the models' initialisation and of the noise (the batch order has train.seed).
    seed: int = 0
    # Generated samples per evaluation (1000: enough for 10 classes, see metrics/coverage.py).
    eval_samples: Annotated[int, AT_LEAST_ONE] = 1000
    # Evaluate (metrics + sample grid) every N epochs, and always after the last.
    eval_every: Annotated[int, AT_LEAST_ONE] = 1
    # Epochs of the reference classifier behind the metrics (trained once, on the real digits).
    classifier_epochs: Annotated[int, AT_LEAST_ONE] = 15
    # Per-layer monitors of both players (gradient norms, update ratios, activations) every N micro-batches.
    monitor_every: Annotated[int, AT_LEAST_ONE] = 10


@dataclass
class GanRun:
    """What :func:`train_gan` returns: the loop's result, the final metrics and the reference levels."""

    result: TwoPlayerResult
    final: dict[str, float]
    reference: dict[str, float]
    seconds: float
    evaluator: GenerativeEvaluator = field(repr=False)


def digits_evaluator(side: int, *, epochs: int = 15, seed: int = 0) -> tuple[GenerativeEvaluator, dict[str, float]]:
    """The metrics' yardstick on digits: a classifier trained on all real digits, the even rows as the
    reference set, and the odd rows' scores against it (the level a perfect generator reaches)."""
    x, y = digit_images(side)
    classifier: ReferenceClassifier = train_reference_classifier(x, y, epochs=epochs, seed=seed)
    evaluator = GenerativeEvaluator(classifier, x[::2], int(y.max()) + 1, data_range=2.0)
    reference = evaluator.evaluate(x[1::2])
    reference["classifier_accuracy"] = evaluator.accuracy(x, y)
    return evaluator, reference


def build_players(config: GanConfig, *, callbacks: Sequence[Callback] = ()) -> list[Player]:
    """Discriminator then generator, initialised from ``config.seed``."""
    seed_everything(config.seed)
    gen = DCGANGenerator(config.latent_dim, side=config.side, width=config.generator_width)
    disc = MultiResolutionDiscriminator(side=config.side, width=config.discriminator_width, scales=config.scales)
    players = []
    for name, model, opts in (("discriminator", disc, config.discriminator), ("generator", gen, config.generator)):
        optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr, betas=(opts.beta1, opts.beta2))
        watchers = [PlayerLayerMonitor(name, sample_every=config.monitor_every), *callbacks]
        players.append(Player(name, model, optimizer, guard=opts.guard, every=opts.every, callbacks=watchers))
    return players


def train_gan(config: GanConfig, *, run_dir: RunDir | None = None, resume: bool = False,
              evaluator: tuple[GenerativeEvaluator, dict[str, float]] | None = None,
              callbacks: Sequence[Callback] = (), player_callbacks: Sequence[Callback] = ()) -> GanRun:
    """Train the GAN of ``config`` on digits; evaluate it every ``eval_every`` epochs.

    Args:
        run_dir: where the run is written (metrics per player, sample grids, checkpoints, models).
        resume: continue the run in ``run_dir``.
        evaluator: a ready :func:`digits_evaluator` (benchmarks share one across runs).
        callbacks: more game-level watchers (e.g. a progress line).
        player_callbacks: watchers added to both players.
    """
    start = time.perf_counter()
    evaluator = evaluator or digits_evaluator(config.side, epochs=config.classifier_epochs)
    x, y = digit_images(config.side)
    players = build_players(config, callbacks=player_callbacks)
    watcher = GeneratorWatcher(evaluator[0], latent_dim=config.latent_dim, samples=config.eval_samples,
                               every=config.eval_every, seed=config.seed + 1234)
    result = fit_two_player(players, GANGame(config.latent_dim, kind=config.loss), TensorDataset(x, y),
                            config=config.train, callbacks=[watcher, *callbacks], run_dir=run_dir, resume=resume)
    final = dict(watcher.last) if watcher.last else evaluator[0].evaluate(watcher.sample(players[1].model))
    return GanRun(result=result, final=final, reference=evaluator[1], seconds=time.perf_counter() - start,
                  evaluator=evaluator[0])


def guard_preset(name: str) -> GuardConfig:
    """The Guard settings the GAN benchmark compares (``none``, ``global_norm``, ``guard``, ``guard_adaptive``,
    and the default Guard less its trust region, spike skip or ZClip: ``guard_no_trust`` ...)."""
    bare: dict[str, Any] = {"spike_z": None, "zscore": None, "trust_region": False}
    presets = {
        "none": GuardConfig(**bare),
        # 1.0: the usual fixed cap of GAN code (e.g. BigGAN's generator); not tuned here.
        "global_norm": GuardConfig(**bare, max_norm=1.0),
        "guard": GuardConfig(),
        # fit_two_player's default: ZClip + non-finite skip, nothing read from the loss (GuardConfig.for_games)
        "game": GuardConfig.for_games(),
        "guard_adaptive": GuardConfig(adaptive_accumulation=True, max_accumulation=8),
        # the default Guard less one part each (which part hurts an adversarial game?)
        "guard_no_trust": GuardConfig(trust_region=False),
        "guard_no_spike": GuardConfig(spike_z=None),
        "guard_no_zclip": GuardConfig(zscore=None),
    }
    if name not in presets:
        raise ValueError(f"unknown guard preset {name!r}; known: {', '.join(presets)}")
    return presets[name]
