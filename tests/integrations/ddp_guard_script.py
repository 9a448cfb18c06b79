"""Run by test_distributed.py under torchrun: one rank's loss spikes alone; every rank must skip alike.

A constant added to rank 1's loss at one step leaves the gradients unchanged, so only the
loss tells the spike; without the all-reduced window loss rank 1 would skip its step and
rank 0 would not, and the replicas would drift apart.
"""

import json
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainground.gradients import Guard, GuardConfig

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
guard = Guard(model, optimizer, config=GuardConfig(check_every=1))
data = torch.Generator().manual_seed(rank)  # each rank its own batches
skips = []
for step in range(40):
    x = torch.randn(16, 8, generator=data)
    y = torch.randint(0, 3, (16,), generator=data)
    loss = F.cross_entropy(model(x), y)
    if rank == 1 and step == 30:
        loss = loss + 1e4  # the loss alone spikes, on one rank
    guard.backward(loss, batch_size=16)
    guard.step()
    skips.append(float(guard.last_stats["skipped"]))
weights = torch.cat([p.detach().flatten() for p in model.parameters()])
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as fh:
    json.dump({"skips": skips, "weights": weights.tolist()}, fh)
dist.barrier()  # no rank tears gloo down while another is still in a collective
dist.destroy_process_group()
