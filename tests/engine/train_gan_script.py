"""Trains a tiny GAN with fit_two_player into a run directory; run as a subprocess by test_two_player.py.

Usage: python train_gan_script.py RUN_DIR [--resume] [--slow SECONDS]
``--slow`` sleeps after every batch so the parent can kill the process mid-run.
"""

from __future__ import annotations

import sys
import time

import torch
from torch.utils.data import TensorDataset

from trainground.data.digit_images import digit_images
from trainground.engine import Callback
from trainground.engine.generative import GeneratorWatcher
from trainground.engine.player_monitors import PlayerLayerMonitor
from trainground.engine.two_player import Player, TwoPlayerConfig, fit_two_player
from trainground.gradients import GuardConfig
from trainground.losses.gan import GANGame
from trainground.models.gan import DCGANGenerator, MultiResolutionDiscriminator


class Slow(Callback):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_batch_end(self, state) -> None:
        time.sleep(self.seconds)


def build(slow: float = 0.0, extra: tuple = ()):
    x, y = digit_images(side=8)
    data = TensorDataset(x[:384], y[:384])
    torch.manual_seed(0)
    gen = DCGANGenerator(8, side=8, width=32)
    disc = MultiResolutionDiscriminator(side=8, width=8, scales=(1, 2))
    players = [
        # fixed K = 2 for the critic; adaptive K for the generator, which acts on every 2nd batch
        Player("discriminator", disc, torch.optim.Adam(disc.parameters(), 2e-3, betas=(0.5, 0.9)),
               guard=GuardConfig(accumulation=2, check_every=2),
               callbacks=[PlayerLayerMonitor("discriminator", sample_every=3), Slow(slow), *extra]),
        Player("generator", gen, torch.optim.Adam(gen.parameters(), 2e-3, betas=(0.5, 0.9)),
               guard=GuardConfig(adaptive_accumulation=True, max_accumulation=4, check_every=2), every=2,
               callbacks=[PlayerLayerMonitor("generator", sample_every=3)]),
    ]
    config = TwoPlayerConfig(epochs=3, batch_size=32, checkpoint_every=5, log_every=4, threads=1)
    watcher = GeneratorWatcher(None, latent_dim=8, samples=64)
    return players, GANGame(latent_dim=8), data, config, [watcher]


def main() -> None:
    run_dir = sys.argv[1]
    resume = "--resume" in sys.argv
    slow = float(sys.argv[sys.argv.index("--slow") + 1]) if "--slow" in sys.argv else 0.0
    players, game, data, config, callbacks = build(slow)
    fit_two_player(players, game, data, config=config, callbacks=callbacks, run_dir=run_dir, resume=resume)


if __name__ == "__main__":
    main()
