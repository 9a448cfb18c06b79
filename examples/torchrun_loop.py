"""Your own loop under DDP: torchrun --nproc_per_node 2 examples/torchrun_loop.py RUN_DIR [EPOCHS]

Each process trains on its share of the batches (DistributedSampler), DDP all-reduces the
gradients, the Guard decides skips and rollbacks from all-reduced numbers (every rank
steps alike), and finish() gathers every rank's per-sample evidence on rank 0, which
writes the run directory. Also runs as one plain process (python examples/torchrun_loop.py).
"""

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from trainground.integrations import Watch

if "WORLD_SIZE" in os.environ:  # started by torchrun (or accelerate launch)
    dist.init_process_group("gloo")
world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
torch.set_num_threads(1)

x, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0)
noisy = y.copy()
flip = rng.random(len(y)) < 0.15
noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
x = torch.tensor(x / 16.0, dtype=torch.float32)
train_set = TensorDataset(x[:1500], torch.tensor(noisy[:1500]))
val_set = TensorDataset(x[1500:], torch.tensor(noisy[1500:]))

torch.manual_seed(0)  # the same initial weights on every rank
net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
model = DistributedDataParallel(net) if world > 1 else net
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

watch = Watch(model, optimizer, train_set, val_set, run_dir=sys.argv[1])  # rank 0 writes
train_sampler = DistributedSampler(watch.train_data, num_replicas=world, rank=rank, seed=0)
train_loader = DataLoader(watch.train_data, batch_size=64 // world, sampler=train_sampler)  # global batch 64
val_loader = DataLoader(watch.val_data, batch_size=256,
                        sampler=DistributedSampler(watch.val_data, num_replicas=world, rank=rank, shuffle=False))
for epoch in range(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    train_sampler.set_epoch(epoch)
    model.train()
    for index, xb, yb in train_loader:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        watch.backward(loss, index=index, logits=logits, labels=yb)
        watch.step()
    model.eval()
    with torch.no_grad():
        for index, xb, yb in val_loader:
            watch.record_val(index, model(xb), yb)
    if watch.end_epoch():  # the same answer on every rank (all-reduced validation loss)
        break
result = watch.finish()  # every rank calls it; rank 0 gets the result

if rank == 0:
    issues = result.table[result.table.is_label_issue]
    found = np.isin(issues["index"], np.flatnonzero(flip)).sum()
    print(f"{world} process(es): {len(issues)} label issues flagged, {found} of them among the {flip.sum()} flipped")
if dist.is_initialized():
    dist.barrier()  # no rank tears gloo down while another is still in a collective
    dist.destroy_process_group()
