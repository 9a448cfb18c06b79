"""Trains digits into a run directory; run as a subprocess by test_checkpoint.py.

Usage: python train_digits_script.py RUN_DIR [--resume] [--slow SECONDS]
``--slow`` sleeps after every step so the parent can kill the process mid-run.
"""

from __future__ import annotations

import sys
import time

import torch
from sklearn.datasets import load_digits

from trainground.data import IndexedDataset, LabelEncoder
from trainground.engine import Callback, FitConfig, fit
from trainground.models import ModelConfig, build_model


class Slow(Callback):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_batch_end(self, state) -> None:
        time.sleep(self.seconds)


def main() -> None:
    run_dir = sys.argv[1]
    resume = "--resume" in sys.argv
    slow = float(sys.argv[sys.argv.index("--slow") + 1]) if "--slow" in sys.argv else 0.0
    d = load_digits()
    data = IndexedDataset(
        torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target), torch.arange(len(d.target)),
        LabelEncoder.fit(d.target), "table", "digits",
    )
    torch.manual_seed(0)
    # Dropout makes the global torch RNG part of the trajectory, so its restore is tested too.
    model = build_model(ModelConfig(hidden=(64, 64), dropout=0.2), input_shape=(64,), num_classes=10,
                        train_features=data.features)
    config = FitConfig(epochs=4, checkpoint_every=5, threads=1, device="cpu", log_every=3)
    # The Slow callback is stateless, so its presence does not change the checkpoint's keys.
    fit(model, data, config=config, run_dir=run_dir, resume=resume, callbacks=[Slow(slow)])


if __name__ == "__main__":
    main()
