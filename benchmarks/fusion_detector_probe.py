"""Why the fusion detector was weak (issue 21): a detection-only probe on development seed 0.

``FusionModel(modalities=("image",))`` + ``DetectionLoss`` trained alone (Adam), mAP@0.5 on the
seed's held-out split and class accuracy at each object's cell every 4 epochs. Variants, a JSON
dict: ``width``, ``deep`` (one more conv at the grid's resolution), ``s1first`` (full-resolution
first conv), ``radius`` (FCOS centre sampling: cells within ``radius`` strides of the centre and
inside the box are positive; a probe-only assignment), ``flip`` (horizontal flips), ``gamma`` /
``alpha`` (focal loss), ``lr``, ``batch``, ``epochs``. Figures: benchmarks/README.md, "The
detector learns the classes".

    OMP_NUM_THREADS=1 python benchmarks/fusion_detector_probe.py '{"gamma": 0, "alpha": 0.5, "batch": 16}' 0
"""
import json
import sys
import time

import torch
from torch import nn

from trainground.data.products import Vocabulary, products_dataset
from trainground.losses import detection as D
from trainground.metrics import mean_average_precision, padded_targets
from trainground.models import fusion as F
from trainground.models.detection import decode_detections

torch.set_num_threads(1)
o = json.loads(sys.argv[1]); seed = int(sys.argv[2])
vocab = Vocabulary()
tr = products_dataset(1500, 1000 + seed, vocabulary=vocab); te = products_dataset(1000, 2000 + seed, vocabulary=vocab)
torch.manual_seed(seed)
if o.get("s1first"):
    class Enc(nn.Module):
        stride = 4
        def __init__(self, width=16, extra_layers=0):
            super().__init__(); self.out_channels = width * 4
            self.net = nn.Sequential(*F._conv(3, width, 1), *F._conv(width, width * 2, 2), *F._conv(width * 2, width * 4, 2),
                                     *F._conv(width * 4, width * 4, 1))
        def forward(self, x): return self.net(x)
    F.ImageEncoder = Enc
model = F.FusionModel(vocab_size=len(vocab), num_classes=4, modalities=("image",), width=o.get("width", 16),
                      extra_layers=int(o.get("deep", 0)))
det = D.DetectionLoss(4, grid=model.grid, stride=4, box_weight=o.get("box_weight", 1.0), alpha=o.get("alpha", 0.25), gamma=o.get("gamma", 2.0))
R = o.get("radius")
if R:
    def assign(target, *, grid, stride, num_classes):
        n, m, _ = target.shape; h, w = grid
        boxes, classes = target[..., :4].float(), target[..., 4].long(); valid = classes >= 0
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        cc = torch.stack([cols.flatten(), rows.flatten()], 1).float().add(0.5).mul(stride)  # [HW,2]
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # [N,M,2]
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        d = (cc[None, None] - centre[:, :, None]).abs()  # [N,M,HW,2]
        inside = (cc[None, None] > boxes[..., None, :2]).all(-1) & (cc[None, None] < boxes[..., None, 2:]).all(-1)
        near = (d < R * stride).all(-1) & inside & valid[..., None]
        a0 = D.assign(target, grid=grid, stride=stride, num_classes=num_classes)
        near[torch.arange(n)[:, None].expand(n, m)[valid], torch.arange(m)[None].expand(n, m)[valid], a0.cell[valid]] = True
        cost = torch.where(near, area[..., None], torch.full_like(near, float("inf"), dtype=torch.float))
        best = cost.argmin(1)  # [N,HW]
        positive = near.any(1)
        cls = classes.clamp_min(0).gather(1, best)
        cls_target = torch.zeros(n, h * w, num_classes); cls_target.scatter_(2, cls[..., None], 1.0); cls_target *= positive[..., None]
        box_target = boxes.gather(1, best[..., None].expand(n, h * w, 4)) * positive[..., None]
        return D.Assignment(a0.valid, a0.cell, a0.classes, cls_target, positive, box_target)
    det.assign = lambda t: assign(t, grid=det.grid, stride=det.stride, num_classes=4)
opt = torch.optim.Adam(model.parameters(), lr=o.get("lr", 3e-3))
X, Y = tr.features["image"], tr.targets["boxes"]
def cls_acc(out, y):
    a = D.assign(y, grid=model.grid, stride=4, num_classes=4); img = torch.arange(len(y))[:, None]
    seen = out[..., 4:][img, a.cell].argmax(-1)
    return float((seen == a.classes)[a.valid].float().mean())
t0 = time.perf_counter(); g = torch.Generator().manual_seed(seed); E = o.get("epochs", 12)
for ep in range(E):
    model.train()
    for idx in torch.randperm(len(X), generator=g).split(o.get("batch", 64)):
        xb, yb = X[idx], Y[idx]
        if o.get("flip"):
            f = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(f[:, None, None, None], xb.flip(-1), xb)
            yf = yb.clone(); yf[..., 0], yf[..., 2] = 32 - yb[..., 2], 32 - yb[..., 0]
            yb = torch.where(f[:, None, None] & (yb[..., 4:5] >= 0), yf, yb)
        out = model({"image": xb})["boxes"]
        l = det(out, yb); opt.zero_grad(); l.backward(); opt.step()
    if ep % 4 == 3 or ep == E - 1:
        model.eval()
        with torch.no_grad():
            out = model({"image": te.features["image"]})["boxes"]
        dets = decode_detections(out, grid=model.grid)
        m = float(mean_average_precision(dets, padded_targets(te.targets["boxes"]))["map"])
        print(json.dumps({"o": o, "ep": ep + 1, "map50": round(m, 3), "cls_acc_at_cell": round(cls_acc(out, te.targets["boxes"]), 3), "s": round(time.perf_counter() - t0)}), flush=True)
