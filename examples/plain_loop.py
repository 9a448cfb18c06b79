"""Your own PyTorch loop, watched by trainground: python examples/plain_loop.py RUN_DIR [EPOCHS]"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainground.integrations import Watch

# Data: 8x8 digits with 15 % of the training labels flipped on purpose.
x, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0)
noisy = y.copy()
flip = rng.random(len(y)) < 0.15
noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
x = torch.tensor(x / 16.0, dtype=torch.float32)
train_set = TensorDataset(x[:1500], torch.tensor(noisy[:1500]))
val_set = TensorDataset(x[1500:], torch.tensor(noisy[1500:]))

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

watch = Watch(model, optimizer, train_set, val_set, run_dir=sys.argv[1])  # + 1 line
train_loader = DataLoader(watch.train_data, batch_size=64, shuffle=True)  # items (index, x, y)
val_loader = DataLoader(watch.val_data, batch_size=256)
for epoch in range(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    model.train()
    for index, xb, yb in train_loader:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        watch.backward(loss, index=index, logits=logits, labels=yb)  # was loss.backward()
        watch.step()  # was optimizer.step(); optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        for index, xb, yb in val_loader:
            watch.record_val(index, model(xb), yb)  # + 1 line
    if watch.end_epoch():  # + 1 line: True once the validation loss stops improving
        break
result = watch.finish()  # sample_issues.csv, findings.json, report.html in RUN_DIR

issues = result.table[result.table.is_label_issue]
found = np.isin(issues["index"], np.flatnonzero(flip)).sum()
print(f"{len(issues)} label issues flagged, {found} of them among the {flip.sum()} flipped labels")
