"""ClipGuard Fusion on domain-randomised products: baselines, clipping variants, a loud modality,
and the target diagnosis (issue 21).

Train on ``make_products(n_train, seed=1000 + s)``, test on ``make_products(n_test,
seed=2000 + s)`` (another draw of every randomised factor). Variants:

- ``image_only`` / ``text_only``: one encoder (text-only has no detection output);
- ``fusion_global``: both encoders, one clip on the whole gradient (``max_norm``);
- ``fusion_modality``: the image parameters (encoder, detection head), the text encoder and
  the fused score head each clipped to
  ``max_norm / sqrt(3)`` (the same bound on the whole update as the global clip);
- ``fusion_task_uw``: per-modality clip, plus each task's gradient clipped to
  ``max_norm / sqrt(2)`` and uncertainty task weighting (Kendall et al. 2018);
- ``fusion_dynamic_percentile`` / ``fusion_dynamic_zscore``: as ``fusion_task_uw`` with every
  limit following its own part's gradient norm (``gradients.norm_thresholds``) instead of a
  fixed number; ``fusion_dynamic_percentile_capped``: the same under the fixed limits as caps.

Each is run plainly and with the detection loss scaled 100x (the image modality's
gradients made 100x louder). By default the loop is the library's Guard + ``TaskGradients``
(written before the multi-target ``fit`` landed); ``--fit`` trains the fusion variants
through the recipe's path instead (``recipes.fusion.train_fusion``: ``fit`` with 10 % held out
for validation, the early-learning window watching; at this script's --epochs and --batch and, like
its own loop, the focal detection loss, not the recipe's newer defaults). Optimiser: Adam (the library's
default), or ``--optimizer sgd`` (momentum 0.9; the old loop only). Under Adam a constant
rescaling of a gradient is mostly undone by the per-parameter normalisation, so what a 100x
louder task changes is mainly its share of the *shared* parameters' update; under SGD a clip
sets the step size directly (benchmarks/README.md: the text encoder's share).

The target diagnosis on injected errors (score outliers, wrong boxes) is
``benchmarks/fusion_diagnosis.py``.

    OMP_NUM_THREADS=1 python benchmarks/fusion.py --seed-list 0 --out cmp_0.json   # one process per seed, then --merge
    OMP_NUM_THREADS=1 python benchmarks/fusion.py --fit --variants fusion_global,fusion_modality --seed-list 0 --out fit_0.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from trainground.data.products import (
    CLASSES,
    Vocabulary,
    make_products,
    products_dataset,
)
from trainground.gradients import DynamicClipConfig, Guard, GuardConfig, TaskGradients
from trainground.losses.detection import DetectionLoss
from trainground.losses.regression import mse_loss
from trainground.losses.task_weighting import make_weighting
from trainground.metrics import (
    mean_absolute_error,
    mean_average_precision,
    padded_targets,
    r2_score,
)
from trainground.models.detection import decode_detections
from trainground.models.fusion import FusionModel
from trainground.recipes.fusion import (
    FusionRecipeConfig,
    train_fusion,
)

BARE = GuardConfig(spike_z=None, percentile=None, zscore=None, trust_region=False)  # only the task clipping acts
VARIANTS = {
    "image_only": {"modalities": ("image",), "clip": "global", "task_clip": False, "weighting": "static"},
    "text_only": {"modalities": ("text",), "clip": "global", "task_clip": False, "weighting": "static"},
    "fusion_global": {"modalities": ("image", "text"), "clip": "global", "task_clip": False, "weighting": "static"},
    "fusion_modality": {"modalities": ("image", "text"), "clip": "modality", "task_clip": False, "weighting": "static"},
    "fusion_task_uw": {"modalities": ("image", "text"), "clip": "modality", "task_clip": True, "weighting": "uncertainty"},
    # As fusion_task_uw, but every limit (each task, each modality group) follows its own gradient
    # norm (AutoClip's 10th percentile / ZClip's z-score per part) instead of a fixed number.
    "fusion_dynamic_percentile": {"modalities": ("image", "text"), "clip": "modality", "task_clip": True,
                                  "weighting": "uncertainty", "dynamic": "percentile"},
    "fusion_dynamic_zscore": {"modalities": ("image", "text"), "clip": "modality", "task_clip": True,
                              "weighting": "uncertainty", "dynamic": "zscore"},
    # Dynamic limits (AutoClip per part) under the fixed limits of fusion_task_uw as caps.
    "fusion_dynamic_percentile_capped": {"modalities": ("image", "text"), "clip": "modality", "task_clip": True,
                                         "weighting": "uncertainty", "dynamic": "percentile", "cap": True},
}


def to_tensors(products, vocab: Vocabulary) -> tuple[dict, dict]:
    x = {"image": torch.from_numpy(products.images), "tokens": torch.from_numpy(vocab.encode(products.texts))}
    boxes = torch.cat([torch.from_numpy(products.boxes), torch.from_numpy(products.classes)[..., None].float()], dim=-1)
    return x, {"score": torch.from_numpy(products.score), "boxes": boxes}


def take(d: dict, idx: torch.Tensor) -> dict:
    return {k: v[idx] for k, v in d.items()}


def build(spec: dict, vocab_size: int, args, seed: int):
    torch.manual_seed(seed)
    model = FusionModel(vocab_size=vocab_size, num_classes=len(CLASSES), modalities=spec["modalities"])
    tasks = ["score"] + (["boxes"] if "image" in spec["modalities"] else [])
    weighting = make_weighting(spec["weighting"], tasks)
    params = list(model.parameters()) + list(weighting.parameters())
    if spec["clip"] == "global":
        groups, limit = {"all": list(model.parameters())}, args.max_norm
    else:
        groups = model.modality_groups()
        limit = args.max_norm / math.sqrt(len(groups))  # same bound on the whole update as the global clip
    shared = list(model.image.parameters()) if "image" in spec["modalities"] else list(model.text.parameters())
    if spec.get("dynamic"):  # each part's limit from its own norm history (under the fixed limits with "cap")
        cap = spec.get("cap", False)
        task_grads = TaskGradients(params, shared=shared, groups=groups, dynamic=DynamicClipConfig(kind=spec["dynamic"]),
                                   group_max_norm=limit if cap else None,
                                   max_norm=args.max_norm / math.sqrt(len(tasks)) if cap else None)
    else:
        task_grads = TaskGradients(params, shared=shared, groups=groups, group_max_norm=limit,
                                   max_norm=args.max_norm / math.sqrt(len(tasks)) if spec["task_clip"] else None)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(params, lr=args.lr)
    guard = Guard(model, optimizer, config=BARE, tasks=task_grads)
    return model, weighting, task_grads, guard, tasks


@torch.no_grad()
def predict(model, x: dict, batch: int = 500) -> dict:
    model.eval()
    parts = [model(take(x, torch.arange(i, min(i + batch, len(x["tokens"]))))) for i in range(0, len(x["tokens"]), batch)]
    model.train()
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def evaluate(model, x, y, mean: float, std: float) -> dict:
    out = predict(model, x)
    score = out["score"] * std + mean
    res = {"mae": float(mean_absolute_error(score, y["score"])), "r2": float(r2_score(score, y["score"]))}
    if "boxes" in out:
        dets = decode_detections(out["boxes"], grid=model.grid)
        res["map50"] = float(mean_average_precision(dets, padded_targets(y["boxes"]))["map"])
    return res


def train(spec: dict, data: dict, args, *, seed: int, loud: float = 1.0, watch=None) -> dict:
    """Train one variant; ``watch(epoch, model)`` is called after each epoch (diagnosis)."""
    x, y = data["train"]
    mean, std = float(y["score"].mean()), float(y["score"].std())
    model, weighting, task_grads, guard, tasks = build(spec, data["vocab_size"], args, seed)
    det_loss = DetectionLoss(len(CLASSES), grid=model.grid, stride=4) if "boxes" in tasks else None
    gen = torch.Generator().manual_seed(seed)
    n, stats, t0 = len(y["score"]), {}, time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=gen)
        for step, start in enumerate(range(0, n, args.batch)):
            idx = order[start : start + args.batch]
            xb, yb = take(x, idx), take(y, idx)
            out = model(xb)
            raw = {"score": mse_loss(out["score"], (yb["score"] - mean) / std)}
            if det_loss is not None:
                raw["boxes"] = loud * det_loss(out["boxes"], yb["boxes"])
            guard.backward(weighting(raw), batch_size=len(idx))
            guard.step()
            if step % 5 == 0:  # one host read every 5 steps
                for k, v in task_grads.stats().items():
                    stats.setdefault(k, []).append(v)
        if watch is not None:
            watch(epoch, model)
    result = evaluate(model, *data["test"], mean, std)
    result["train_s"] = round(time.perf_counter() - t0, 1)
    result["grad_stats_mean"] = {k: float(np.nanmean(v)) for k, v in stats.items()}
    result["task_weights"] = [round(w, 4) for w in weighting.weights().tolist()]
    return result


def load(args, seed: int, vocab: Vocabulary) -> dict:
    train_p, test_p = make_products(args.n_train, seed=1000 + seed), make_products(args.n_test, seed=2000 + seed)
    return {"train": to_tensors(train_p, vocab), "test": to_tensors(test_p, vocab), "vocab_size": len(vocab)}


def seeds(args) -> list[int]:
    return [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))


def merge(paths: list[str]) -> dict:
    """One result from per-seed result files (seeds run as separate processes)."""
    parts = []
    for path in paths:
        with open(path) as f:
            parts.append(json.load(f))
    runs: dict[str, list] = {}
    for part in parts:
        for key, value in part["runs"].items():
            runs.setdefault(key, []).extend(value)
    return {"runs": runs, "summary": {k: summarise(v) for k, v in runs.items()}, "config": parts[0]["config"],
            "wall_s_per_process": [p["wall_s"] for p in parts], "note": parts[0]["note"]}


def summarise(runs: list[dict]) -> dict:
    keys = [k for k in ("mae", "r2", "map50") if k in runs[0]]
    return {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs]))} for k in keys}


def train_through_fit(spec: dict, seed: int, loud: float, args) -> dict:
    """One fusion variant through the recipe's ``fit`` path (``recipes.fusion.train_fusion``)."""
    import tempfile

    vocab = Vocabulary()
    train_set = products_dataset(args.n_train, 1000 + seed, vocabulary=vocab)
    test_set = products_dataset(args.n_test, 2000 + seed, vocabulary=vocab)
    config = FusionRecipeConfig(samples=args.n_train, test_samples=args.n_test, seed=seed, epochs=args.epochs,
                                batch_size=args.batch, lr=args.lr, clip=spec["clip"], max_norm=args.max_norm,
                                task_clip=spec["task_clip"], weighting=spec["weighting"],
                                thresholds=spec.get("dynamic", "fixed"), detection_weight=loud,
                                focal_alpha=0.25, focal_gamma=2.0)  # the loss of results/fusion_fit.json
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_fusion(config, train_set, test_set, vocab_size=len(vocab), out=Path(tmp) / "run", report=False)
    return {**result.test, "train_s": round(time.perf_counter() - t0, 1)}


def run_comparison(args) -> dict:
    vocab, results = Vocabulary(), {}
    for seed in seeds(args):
        data = load(args, seed, vocab)
        for loud in (1.0, 100.0):
            for name, spec in VARIANTS.items():
                if args.variants and name not in args.variants.split(","):
                    continue
                if loud != 1.0 and "image" not in spec["modalities"]:
                    continue  # no detection loss to make loud
                key = f"{name}{'_loud100' if loud != 1.0 else ''}"
                if args.fit:
                    if len(spec["modalities"]) < 2 or spec.get("cap"):
                        continue  # the recipe trains the fusion model with its own limits only
                    run = train_through_fit(spec, seed, loud, args)
                else:
                    run = train(spec, data, args, seed=seed, loud=loud)
                results.setdefault(key, []).append(run)
                print(key, seed, {k: round(v, 4) for k, v in run.items() if isinstance(v, float)}, flush=True)
    return {"runs": results, "summary": {k: summarise(v) for k, v in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    parser.add_argument("--max-norm", type=float, default=1.0, help="whole-update clip bound (1.0, the common default)")
    parser.add_argument("--fit", action="store_true",
                        help="train the fusion variants through the recipe's fit path (Adam; 10 %% held out for validation)")
    parser.add_argument("--variants", default=None, help="comma-separated variants to run (default: all)")
    parser.add_argument("--seed-list", default=None, help="comma-separated seeds (instead of 0..seeds-1)")
    parser.add_argument("--merge", nargs="+", default=None, help="merge per-seed result files into --out")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.fit and args.optimizer != "adam":
        parser.error("--fit trains through the recipe, whose optimiser is fit's default (Adam)")
    if args.merge:
        with open(args.out, "w") as f:
            json.dump(merge(args.merge), f, indent=1)
        return
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = run_comparison(args)
    result["config"] = vars(args)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["note"] = "CPU, 1 thread, machine shared with other jobs (loaded): times are indicative only"
    print(json.dumps(result["summary"], indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
