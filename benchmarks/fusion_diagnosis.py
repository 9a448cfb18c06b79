"""ClipGuard Fusion's target diagnosis on injected errors (issue 21): score outliers and wrong boxes.

5 % of the training scores get an outlier (+-3..5 standard deviations) and 5 % of the images
one wrong box (half moved to where no object is, half given another class); the model is
trained through the recipe's ``fit`` path at its defaults (``recipes.fusion.train_fusion``,
which also measures the detector's class skill on ``fit``'s validation images), and the
early-learning window's checks are scored against what was injected:

- ``score_outliers``: ``target_outliers`` on the scores;
- ``loss_check``: the per-object loss check on the boxes;
- ``box_check``: ``box_match`` as the recipe runs it (boxes no predicted box matches abstain;
  the *another class* flags withheld when the detector's class skill is below the gate);
- ``box_check_match`` / ``box_check_agree``: the box rules ``"match"`` (the flags as they are) and
  ``"agree"`` (only those the per-object loss confirms), both with the gate, from the same training;
- ``box_check_peers``: the rule ``"peers"`` (the loss against the box's class x size peers, *missing*
  confirmed at z 3.5, unmatched boxes judged by the loss alone: ``box_check_peers_by_loss``), and
  ``box_check_peers_pooled`` / ``box_check_peers_no_unmatched``: that rule less one part, same readings;
- ``box_check_ungated``: the rule "match" without the competence gate;
- ``box_check_every_box``: the earliest rule (every box judged, no gate).

Each box check is scored as a whole against every wrong box, its *missing* flag against the
moved boxes and its *another class* flag against the swapped classes (``vs_moved``,
``vs_other_class``). ``--folds K``: the box check on out-of-sample predictions instead (K
trainings per seed, each fold judged by a model trained on the others).

    OMP_NUM_THREADS=1 python benchmarks/fusion_diagnosis.py --seed-list 20 --out d_20.json   # one process per seed
    OMP_NUM_THREADS=1 python benchmarks/fusion_diagnosis.py --seed-list 20 --set batch_size=64 --set epochs=20 --out o.json
    python benchmarks/fusion_diagnosis.py --merge d_20.json d_21.json --out benchmarks/results/fusion_diagnosis_x.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from trainground.boxes import box_iou
from trainground.data.products import CLASSES, Vocabulary, products_dataset
from trainground.data.tasks import gather
from trainground.diagnosis.box_match import (
    agree_with_loss,
    box_label_issues,
    class_competence,
    gate_class_flags,
    located_class_probs,
    peer_loss_z,
)
from trainground.diagnosis.target_outliers import Z_THRESHOLD, robust_z
from trainground.engine import Callback, FitConfig
from trainground.engine.fit_setup import split_data
from trainground.recipes.fusion import (
    FusionRecipeConfig,
    predict_outputs,
    standardised,
    train_fusion,
)

RULES = ("box_check", "box_check_match", "box_check_agree", "box_check_peers", "box_check_peers_pooled",
         "box_check_peers_no_unmatched", "box_check_ungated", "box_check_every_box")
KINDS = ("", "_missing", "_other_class", "_by_loss")


def inject(y: dict, rate: float, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Score outliers and wrong boxes; returns the noisy targets, the outlier mask and the wrong
    boxes (``[N, M]``: 1 another class, 2 moved, 0 untouched)."""
    rng = np.random.default_rng(10_000 + seed)
    score, boxes = y["score"].clone(), y["boxes"].clone()
    n, size = len(score), 32
    outliers = rng.choice(n, int(rate * n), replace=False)
    score[outliers] += torch.from_numpy(rng.choice([-1, 1], len(outliers)) * rng.uniform(3, 5, len(outliers)) * float(score.std())).float()
    wrong = np.zeros(boxes.shape[:2], dtype=np.int8)
    for i in rng.choice(n, int(rate * n), replace=False):
        real = np.flatnonzero(boxes[i, :, 4].numpy() >= 0)
        k = int(rng.choice(real))
        kind = 1 if rng.uniform() < 0.5 else 2
        if kind == 1:  # another class
            boxes[i, k, 4] = float((int(boxes[i, k, 4]) + rng.integers(1, len(CLASSES))) % len(CLASSES))
        else:  # moved to where no object is (IoU with every object <= 0.1)
            w, h = float(boxes[i, k, 2] - boxes[i, k, 0]), float(boxes[i, k, 3] - boxes[i, k, 1])
            for _ in range(50):
                x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
                cand = torch.tensor([[x1, y1, x1 + w, y1 + h]])
                if float(box_iou(cand, boxes[i, real, :4]).max()) <= 0.1:
                    boxes[i, k, :4] = cand[0]
                    break
            else:
                continue
        wrong[i, k] = kind
    is_outlier = np.zeros(n, dtype=bool)
    is_outlier[outliers] = True
    return {"score": score, "boxes": boxes}, is_outlier, wrong


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    return {"flagged": int(flagged.sum()), "injected": int(truth.sum()), "precision": tp / max(int(flagged.sum()), 1),
            "recall": tp / max(int(truth.sum()), 1)}


def flag_scores(flagged: torch.Tensor, wrong: np.ndarray) -> dict:
    """Precision / recall of flags against all injected wrong boxes, and recall per kind."""
    pr = precision_recall(flagged.numpy(), wrong > 0)
    for kind, key in ((1, "recall_other_class"), (2, "recall_moved")):
        pr[key] = precision_recall(flagged.numpy(), wrong == kind)["recall"]
    return pr


def box_check_scores(boxes, wrong: np.ndarray, name: str) -> dict:
    """A box check's flags scored: all, *missing*, *another class* (each also against its own kind)."""
    res = {name: flag_scores(boxes.is_issue, wrong), f"{name}_missing": flag_scores(boxes.missing, wrong),
           f"{name}_other_class": flag_scores(boxes.other_class, wrong)}
    res[f"{name}_missing"]["vs_moved"] = precision_recall(boxes.missing.numpy(), wrong == 2)
    res[f"{name}_other_class"]["vs_other_class"] = precision_recall(boxes.other_class.numpy(), wrong == 1)
    if boxes.by_loss is not None:  # the rule "peers": missing flags the loss alone raised on unmatched boxes
        res[f"{name}_by_loss"] = flag_scores(boxes.by_loss, wrong)
    return res


def peers_ablations(window, target: torch.Tensor) -> dict:
    """The rule "peers" less one of its parts, from the same readings (gated as the recipe gates):
    the loss's z against all boxes instead of the peers (``pooled``); unmatched boxes left unjudged."""
    q, best_iou, background = window.kept_boxes["boxes"]
    issues, loss = box_label_issues(q, target, background, best_iou), window.kept["boxes"]
    pooled = agree_with_loss(issues, robust_z(loss), missing_z=Z_THRESHOLD, unmatched_z=Z_THRESHOLD)
    no_unmatched = agree_with_loss(issues, peer_loss_z(loss, issues.given, issues.size_bin), missing_z=Z_THRESHOLD)
    competence = class_competence(issues, window.competence_images)
    return {"pooled": gate_class_flags(pooled, competence), "no_unmatched": gate_class_flags(no_unmatched, competence)}


def noisy_products(args, seed: int):
    """The seed's training set with injected score outliers and wrong boxes, its clean test set."""
    vocab = Vocabulary()
    train = products_dataset(args.n_train, 1000 + seed, vocabulary=vocab)
    test = products_dataset(args.n_test, 2000 + seed, vocabulary=vocab)
    noisy, is_outlier, wrong = inject(dict(train.targets), args.noise_rate, seed)
    return vocab, replace(train, targets=noisy), test, is_outlier, wrong


def recipe_config(args, seed: int, samples: int) -> FusionRecipeConfig:
    """The recipe's defaults, with ``--set`` options (e.g. the earlier detector recipe)."""
    fields = {f.name: f.type for f in dataclasses.fields(FusionRecipeConfig)}
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {item}: FusionRecipeConfig has no option {key!r}")
        overrides[key] = json.loads(value) if value[:1] in "-0123456789tfn[{" else value
    return FusionRecipeConfig(samples=samples, test_samples=args.n_test, seed=seed, **overrides)


def run_diagnosis(args) -> dict:
    """Inject wrong targets, train through the recipe's ``fit`` path at its defaults, score the checks."""
    out = []
    for seed in args.seeds:
        vocab, train, test, is_outlier, wrong = noisy_products(args, seed)
        with tempfile.TemporaryDirectory() as tmp:
            result = train_fusion(recipe_config(args, seed, args.n_train), train, test, vocab_size=len(vocab),
                                  out=Path(tmp) / "run", report=False)
        window = result.window
        issues = window.results()
        boxes = window.box_issues()["boxes"]  # the recipe's rule: unmatched boxes abstain, the competence gate
        q, best_iou, background = window.kept_boxes["boxes"]
        ungated = box_label_issues(q, train.targets["boxes"], background, best_iou)
        every_box = box_label_issues(q, train.targets["boxes"], background, best_iou, abstain="none")
        by_rule, recipe_rule = {}, window.box_rule  # both box rules (with the gate) from this one training
        for rule in ("match", "agree", "peers"):
            window.box_rule = rule
            by_rule[rule] = window.box_issues()["boxes"]
        window.box_rule = recipe_rule
        res = {"seed": seed, "window_epochs": window.window_epochs, "test": result.test, "train_s": round(result.seconds, 1),
               "class_competence": {**boxes.competence.figures(), "skilled": boxes.competence.skilled},
               "withheld": int(boxes.withheld.sum()),
               "score_outliers": precision_recall(issues["score"].is_issue.numpy(), is_outlier),
               "loss_check": flag_scores(issues["boxes"].is_issue, wrong),
               "box_rule": recipe_rule, **box_check_scores(boxes, wrong, "box_check"),
               **box_check_scores(by_rule["match"], wrong, "box_check_match"),
               **box_check_scores(by_rule["agree"], wrong, "box_check_agree"),
               "box_check_agree_unconfirmed": int(by_rule["agree"].unconfirmed.sum()),
               **box_check_scores(by_rule["peers"], wrong, "box_check_peers"),
               "box_check_peers_unconfirmed": int(by_rule["peers"].unconfirmed.sum()),
               **{k: v for name, rule in peers_ablations(window, train.targets["boxes"]).items()
                  for k, v in box_check_scores(rule, wrong, f"box_check_peers_{name}").items()},
               **box_check_scores(ungated, wrong, "box_check_ungated"),
               **box_check_scores(every_box, wrong, "box_check_every_box"),
               "box_check_abstained": {"boxes": int(boxes.abstained.sum()), "objects": int((boxes.given >= 0).sum()),
                                       "wrong_moved": int((boxes.abstained.numpy() & (wrong == 2)).sum()),
                                       "wrong_other_class": int((boxes.abstained.numpy() & (wrong == 1)).sum())}}
        # fit's validation share was never trained on: the box check there is out-of-sample.
        held_out = np.zeros(len(wrong), dtype=bool)
        held_out[split_data(standardised(train, 0.0, 1.0), None, FitConfig(seed=seed))[1].positions.numpy()] = True
        for name, rows in (("held_out", held_out), ("trained_on", ~held_out)):
            flags, truth_rows = boxes.is_issue.numpy()[rows], wrong[rows] > 0
            res[f"box_check_{name}"] = {"images": int(rows.sum()), "flagged": int(flags.sum()),
                                        "true_flags": int((flags & truth_rows).sum()), "injected": int(truth_rows.sum())}
        rows = boxes.evidence(train.targets["boxes"])
        for row in rows:
            row["injected"] = ("none", "other_class", "moved")[int(wrong[row["image"], row["object"]])]
        res["evidence_first_20"] = rows[:20]
        if args.dump:  # the window's raw readings, to score other rules on the same training
            torch.save({"q": q, "best_iou": best_iou, "background": background, "object_loss": window.kept["boxes"],
                        "target": train.targets["boxes"], "wrong": torch.from_numpy(wrong), "val": window.competence_images},
                       f"{args.dump}_{seed}.pt")
        print({k: v for k, v in res.items() if k != "evidence_first_20"}, flush=True)
        out.append(res)
    return {"runs": out, "mean": means(out)}


def _subset(data, idx: torch.Tensor):
    return replace(data, features=gather(data.features, idx), targets={t: v[idx] for t, v in data.targets.items()},
                   index=data.index[idx])


class _FoldBoxes(Callback):
    """After each epoch: the detector's class probabilities at the held-out fold's labelled boxes."""

    def __init__(self, fold) -> None:
        self.fold, self.epochs = fold, []

    @torch.no_grad()
    def on_epoch_end(self, state) -> None:
        boxes = predict_outputs(state.model, self.fold.features)["boxes"]
        self.epochs.append(located_class_probs(boxes, self.fold.targets["boxes"]))


def run_out_of_sample(args) -> dict:
    """The box check (ungated) on out-of-sample predictions: K folds, each judged by a model (the
    recipe's defaults, through ``fit``) trained on the other K-1, at that model's window end."""
    out = []
    for seed in args.seeds:
        vocab, train, test, _, wrong = noisy_products(args, seed)
        n = len(train)
        folds = np.array_split(np.random.default_rng(seed).permutation(n), args.folds)
        q = torch.zeros(n, train.targets["boxes"].shape[1], len(CLASSES))
        best_iou = torch.zeros(n, train.targets["boxes"].shape[1])
        background = None
        window_epochs = []
        for k, held in enumerate(folds):
            rest = torch.from_numpy(np.sort(np.concatenate([f for j, f in enumerate(folds) if j != k])))
            held = torch.from_numpy(np.sort(held))
            watch = _FoldBoxes(_subset(train, held))
            with tempfile.TemporaryDirectory() as tmp:
                result = train_fusion(recipe_config(args, seed, len(rest)), _subset(train, rest), test, vocab_size=len(vocab),
                                      out=Path(tmp) / "run", report=False, callbacks=[watch])
            kept = watch.epochs[result.window.window_epochs - 1]  # the fold model's window end
            if background is None:
                background = torch.zeros(n, kept[2].shape[1])
            q[held], best_iou[held], background[held] = kept
            window_epochs.append(result.window.window_epochs)
        res = {"seed": seed, "folds": args.folds, "window_epochs": window_epochs,
               **box_check_scores(box_label_issues(q, train.targets["boxes"], background, best_iou), wrong, "box_check_ungated"),
               **box_check_scores(box_label_issues(q, train.targets["boxes"], background, best_iou, abstain="none"), wrong,
                                  "box_check_every_box")}
        print(res, flush=True)
        out.append(res)
    return {"runs": out, "mean": means(out)}


def means(runs: list[dict]) -> dict:
    """Mean over seeds of each check's per-seed figures."""
    keys = ("precision", "recall", "recall_other_class", "recall_moved")
    checks = [k for k in ("score_outliers", "loss_check", *(r + kind for r in RULES for kind in KINDS)) if k in runs[0]]
    out = {k: {m: float(np.mean([r[k][m] for r in runs])) for m in keys if m in runs[0][k]} for k in checks}
    out.update({f"{k}_flagged_per_seed": float(np.mean([r[k]["flagged"] for r in runs])) for k in checks})
    for rule in RULES:
        for k, sub in ((f"{rule}_missing", "vs_moved"), (f"{rule}_other_class", "vs_other_class")):
            if k in runs[0]:
                out[k][sub] = {m: float(np.mean([r[k][sub][m] for r in runs])) for m in ("precision", "recall", "flagged")}
    if "test" in runs[0]:
        out["test_map50"] = float(np.mean([r["test"]["map50"] for r in runs]))
        out["class_skill"] = float(np.mean([r["class_competence"]["skill"] for r in runs]))
        out["skilled_seeds"] = int(sum(r["class_competence"]["skilled"] for r in runs))
        out["withheld_per_seed"] = float(np.mean([r["withheld"] for r in runs]))
    return out


def merge(paths: list[str]) -> dict:
    """One result from per-seed result files (seeds run as separate processes)."""
    parts = []
    for path in paths:
        with open(path) as f:
            parts.append(json.load(f))
    runs = [r for part in parts for r in part["runs"]]
    return {"runs": runs, "mean": means(runs), "config": parts[0]["config"], "note": parts[0]["note"],
            "wall_s_per_process": [p["wall_s"] for p in parts]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-list", default="0", help="comma-separated seeds")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a FusionRecipeConfig option other than the recipe's default (repeatable)")
    parser.add_argument("--noise-rate", type=float, default=0.05)
    parser.add_argument("--folds", type=int, default=0, help="judge boxes out of sample, K folds (K trainings through fit)")
    parser.add_argument("--merge", nargs="+", default=None, help="merge per-seed result files into --out")
    parser.add_argument("--out", default=None)
    parser.add_argument("--dump", default=None, help="also save each seed's window readings to DUMP_<seed>.pt")
    args = parser.parse_args()
    if args.merge:
        with open(args.out, "w") as f:
            json.dump(merge(args.merge), f, indent=1)
        return
    args.seeds = [int(s) for s in args.seed_list.split(",")]
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = run_out_of_sample(args) if args.folds else run_diagnosis(args)
    result["config"] = {k: v for k, v in vars(args).items() if k != "merge"}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["note"] = "CPU, 1 thread, machine shared with other jobs (loaded): times are indicative only"
    print(json.dumps(result["mean"], indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
