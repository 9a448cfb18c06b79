"""The wrong-box rules scored from saved window readings (``fusion_diagnosis.py --dump``), no training.

Each ``.pt`` file holds one seed's early-learning readings (class probabilities at the labelled
boxes, best IoU, background, the per-object window loss, the targets, the injected wrong boxes and
fit's validation images). Every rule is applied as the recipe applies it (competence gate included)
and scored: all flags against every wrong box, *missing* against the moved boxes, *another class*
against the swapped classes, and (rule "peers") the loss-alone flags on unmatched boxes.

    python benchmarks/fusion_box_rules.py dev_0.pt dev_1.pt dev_2.pt --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from trainground.diagnosis.box_match import (
    agree_with_loss,
    agree_with_peers,
    box_label_issues,
    class_competence,
    gate_class_flags,
    peer_loss_z,
)
from trainground.diagnosis.target_outliers import Z_THRESHOLD, robust_z


def rules(d: dict) -> dict:
    """Each rule's gated ``BoxIssues`` from one seed's readings."""
    issues = box_label_issues(d["q"], d["target"], d["background"], d["best_iou"])
    loss = d["object_loss"]
    out = {"match": issues, "agree": agree_with_loss(issues, robust_z(loss)), "peers": agree_with_peers(issues, loss),
           "peers_pooled": agree_with_loss(issues, robust_z(loss), missing_z=Z_THRESHOLD, unmatched_z=Z_THRESHOLD),
           "peers_no_unmatched": agree_with_loss(issues, peer_loss_z(loss, issues.given, issues.size_bin), missing_z=Z_THRESHOLD)}
    competence = class_competence(issues, d["val"])
    return {k: gate_class_flags(v, competence) for k, v in out.items()}


def pr(flags: torch.Tensor, truth: np.ndarray) -> dict:
    f = flags.numpy()
    tp = int((f & truth).sum())
    return {"flagged": int(f.sum()), "precision": tp / max(int(f.sum()), 1), "recall": tp / max(int(truth.sum()), 1)}


def score(path: str) -> dict:
    d = torch.load(path)
    wrong = d["wrong"].numpy()
    out = {"readings": path}
    for name, b in rules(d).items():
        out[name] = {"all": pr(b.is_issue, wrong > 0), "missing_vs_moved": pr(b.missing, wrong == 2),
                     "other_class_vs_swapped": pr(b.other_class, wrong == 1),
                     **({"by_loss_vs_moved": pr(b.by_loss, wrong == 2)} if b.by_loss is not None else {})}
    return out


def means(runs: list[dict]) -> dict:
    out = {}
    for rule in (k for k in runs[0] if k != "readings"):
        out[rule] = {}
        for kind in runs[0][rule]:
            p = float(np.mean([r[rule][kind]["precision"] for r in runs]))
            r_ = float(np.mean([r[rule][kind]["recall"] for r in runs]))
            out[rule][kind] = {"precision": p, "recall": r_, "f1_of_means": 2 * p * r_ / max(p + r_, 1e-12),
                               "flagged_per_seed": float(np.mean([r[rule][kind]["flagged"] for r in runs]))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readings", nargs="+")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs = [score(p) for p in args.readings]
    result = {"runs": runs, "mean": means(runs)}
    for rule, kinds in result["mean"].items():
        print(rule, {k: {m: round(v, 3) for m, v in x.items()} for k, x in kinds.items()})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
