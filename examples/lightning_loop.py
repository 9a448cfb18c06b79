"""A PyTorch Lightning run, watched by trainground: python examples/lightning_loop.py RUN_DIR [EPOCHS]"""

import sys

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainground.data import WithIndex
from trainground.integrations.lightning import TraingroundCallback

x, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0)
noisy = y.copy()
flip = rng.random(len(y)) < 0.15
noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
x = torch.tensor(x / 16.0, dtype=torch.float32)
train_set = WithIndex(TensorDataset(x[:1500], torch.tensor(noisy[:1500])))  # items (index, x, y)
val_set = WithIndex(TensorDataset(x[1500:], torch.tensor(noisy[1500:])), offset=1500)


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def training_step(self, batch, batch_idx):
        index, xb, yb = batch
        logits = self.net(xb)
        return {"loss": F.cross_entropy(logits, yb), "logits": logits}  # logits for the callback

    def validation_step(self, batch, batch_idx):
        index, xb, yb = batch
        logits = self.net(xb)
        return {"loss": F.cross_entropy(logits, yb), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


torch.manual_seed(0)
callback = TraingroundCallback(sys.argv[1], stop_early=True)
trainer = pl.Trainer(max_epochs=int(sys.argv[2]) if len(sys.argv) > 2 else 30, callbacks=[callback],
                     accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(Classifier(), DataLoader(train_set, batch_size=64, shuffle=True), DataLoader(val_set, batch_size=256))

issues = callback.result.table[callback.result.table.is_label_issue]
found = np.isin(issues["index"], np.flatnonzero(flip)).sum()
print(f"{len(issues)} label issues flagged, {found} of them among the {flip.sum()} flipped labels")
