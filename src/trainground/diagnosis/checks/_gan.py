"""What the GAN checks share: the epoch columns ``fit_two_player`` + ``GeneratorWatcher`` write."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainground.diagnosis.evidence import Evidence

# Player names of trainground.losses.gan.GANGame (the recipe's and the benchmark's).
DISCRIMINATOR, GENERATOR = "discriminator", "generator"
# Key of Evidence.extra holding each player's per-step records (``metrics-<player>.jsonl``).
PLAYERS_KEY = "gan_players"


def epoch_columns(evidence: Evidence, *names: str) -> pd.DataFrame | None:
    """The evaluated epochs (rows where every column in ``names`` is finite), or None when the
    run has none of these columns (it is no GAN run)."""
    epochs = evidence.epochs
    if epochs is None or not set(names) <= set(epochs.columns):
        return None
    frame = epochs[["step", "epoch", *names]].apply(pd.to_numeric, errors="coerce")
    return frame[np.isfinite(frame[list(names)]).all(axis=1)].reset_index(drop=True)


def player_steps(evidence: Evidence, name: str) -> pd.DataFrame | None:
    players = evidence.extra.get(PLAYERS_KEY) or {}
    steps = players.get(name)
    return None if steps is None or len(steps) == 0 else steps
