"""Benchmark B: clean test accuracy after automatic repair, side by side with cleanlab.

Protocol B of ``../shared/anchors/`` (README there): digits and mnist1d from the anchors'
``load_dataset`` (80/20 stratified split, seed 0, standardised), sym20 / sym40 / asym30
noise on the train split from trainground's ``inject_label_noise`` (checked here to give
the anchors' ``inject_noise`` labels bit for bit), noise seeds 0, 1, 2 (model seed = noise
seed). For every (data, noise, seed), in the same process:

  plain (anchor)      ``common.train_mlp`` on the noisy labels: 40 epochs, all of the
                      train split (the anchors' plain row). 1 training.
  plain fit (ours)    trainground ``fit`` with the same recipe (MLP 256-256, Adam 1e-3,
                      batch 64, 40 epochs) on the noisy labels, 90 % of the train split
                      (10 % validation, unused for decisions). 1 training.
  CleanLearning       the anchors' code path (``bench_b_clean_accuracy.clean_learning`` with
                      ``cv_pred_probs``: 5-fold CV + filter + final fit). 6 trainings.
  trainground repair  ``recipes.repair.repair_dataset`` with the same recipe: round 0 =
                      diagnosis of the noisy data, then policies (relabel / quarantine /
                      reweight / rebalance / drop duplicates + the registered training
                      policies), retrain + diagnose per round (every round with generalized
                      cross-entropy, the default ``repair_loss``), stop when the accuracy on a
                      frozen 10 % validation split (noisy labels, never relabelled) stops
                      improving; the best round's model is tested. Trainings = sample
                      presentations of all rounds / (40 x train split).
  oracle              ``common.train_mlp`` on the true labels. 1 training.

--model cnn1d replaces the MLP by the built-in 1-D CNN (``ModelConfig(name="cnn1d")``) in EVERY
column: ``fit`` and the repair build it from the config, and the anchor columns (plain, oracle,
CleanLearning's 5 CV folds and final fit) train the same architecture with the anchors' loop
through ``signal_models.py`` (the module ``label_errors.py --model cnn1d`` uses; CleanLearning gets
its scikit-learn wrapper, sample weights included). --epochs sets the recipe's epochs for every
column (the MLP rows keep the anchors' 40).

Also: precision of relabels (relabelled samples whose new label is the true one, in the
kept round), quarantine precision (excluded samples that were truly corrupted), the share
of correct labels in the repaired training data. Nothing reads the test labels but the
final accuracy.

Usage: python benchmarks/repair_accuracy.py [--datasets digits mnist1d] [--seeds 0 1 2]
       [--noise sym20 sym40 asym30] [--threads 1] [--out benchmarks/results/repair_accuracy.json]
       [--skip-cleanlab] [--model mlp|cnn1d] [--epochs 40]
       python benchmarks/repair_accuracy.py --merge a.json b.json --out merged.json   # tables only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from trainground.data import IndexedDataset, LabelEncoder, inject_label_noise
from trainground.engine import FitConfig, RunConfig, fit
from trainground.engine.evaluate import predict_logits
from trainground.engine.rng import seed_everything
from trainground.models import ModelConfig, build_model
from trainground.recipes.repair import repair_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import signal_models  # benchmarks/signal_models.py, shared with label_errors.py

_ROOT = Path(__file__).resolve().parents[1]
ANCHORS = next((p for p in (_ROOT.parent / "shared" / "anchors", _ROOT.parents[1] / "shared" / "anchors")
                if (p / "common.py").exists()), _ROOT.parent / "shared" / "anchors")
METHODS = ("plain_anchor", "plain_fit", "cleanlearning", "repair", "oracle")
NAMES = {"plain_anchor": "plain (anchor `train_mlp`)", "plain_fit": "plain `fit` (ours, no repair)",
         "cleanlearning": "cleanlab CleanLearning", "repair": "trainground repair", "oracle": "oracle (true labels)"}


def load_anchor(name: str, anchors: Path):
    """Import ``anchors/<name>.py`` by path (the anchors are scripts, not a package)."""
    sys.path.insert(0, str(anchors))
    spec = importlib.util.spec_from_file_location(name, anchors / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def dataset(x: np.ndarray, y: np.ndarray, name: str) -> IndexedDataset:
    return IndexedDataset(features=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                          labels=torch.from_numpy(y.astype(np.int64)), index=torch.arange(len(y)),
                          encoder=LabelEncoder(tuple(range(10))), kind="table", name=name)


def recipe(seed: int, threads: int, epochs: int = 40) -> FitConfig:
    return FitConfig(epochs=epochs, lr=1e-3, batch_size=64, seed=seed, val_fraction=0.1, device="cpu", threads=threads)


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    logits = predict_logits(model, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return float((logits.argmax(1).numpy() == y).mean())


def model_config(model: str) -> ModelConfig:
    return ModelConfig() if model == "mlp" else ModelConfig(name=model)


def anchor_training(common, x: np.ndarray, y: np.ndarray, seed: int, model: str, epochs: int) -> torch.nn.Module:
    """The anchors' plain training: ``common.train_mlp``, or its loop with a built-in signal model."""
    if model == "mlp":
        return common.train_mlp(x, y, seed)
    return signal_models.train_signal_model(x, y, seed, model, epochs)


def plain_fit(x, y_noisy, xte, yte, seed, threads, model: str = "mlp", epochs: int = 40) -> dict:
    t0 = time.perf_counter()
    data = dataset(x, y_noisy, "plain")
    seed_everything(seed)
    net = build_model(model_config(model), input_shape=data.input_shape, num_classes=10, train_features=data.features)
    result = fit(net, data, config=recipe(seed, threads, epochs))
    return {"test_acc": accuracy(result.model, xte, yte), "trainings": 0.9, "wall_s": time.perf_counter() - t0}


def repair_run(x, y_noisy, y_true, truth, xte, yte, seed, threads, model: str = "mlp", epochs: int = 40) -> dict:
    t0 = time.perf_counter()
    data = dataset(x, y_noisy, "bench")
    test = dataset(xte, yte, "test")
    result = repair_dataset(data, config=RunConfig(model=model_config(model), fit=recipe(seed, threads, epochs)), test=test)
    wall = time.perf_counter() - t0
    state = result.state
    kept = state.excluded == ""
    relabelled = kept & (state.labels != state.original)
    excluded = ~kept
    return {
        "test_acc": result.after["test_accuracy"], "round0_test_acc": result.before["test_accuracy"],
        # The reference round (the keep rule's comparator) is a training too.
        "trainings": float(sum(r["trainings"] for r in [*result.rounds, *([result.reference] if result.reference else [])])),
        "wall_s": wall,
        "rounds": len(result.rounds) - 1, "best_round": result.best_round,
        "n_relabelled": int(relabelled.sum()),
        "relabel_precision": float((state.labels[relabelled] == y_true[relabelled]).mean()) if relabelled.any() else None,
        "relabel_recall": float((relabelled & truth & (state.labels == y_true)).sum() / max(int(truth.sum()), 1)),
        "n_excluded": int(excluded.sum()),
        "quarantine_precision": float(truth[excluded].mean()) if excluded.any() else None,
        "n_reweighted": int((kept & (state.weights != 1.0)).sum()),
        "label_accuracy_before": float((y_noisy == y_true).mean()),
        "label_accuracy_after": float((state.labels[kept] == y_true[kept]).mean()),
        "stopped": result.stopped,
        "per_round": [round_record(m) for m in result.rounds],
        "reference": None if result.reference is None else {
            "val_acc": result.reference["val_accuracy"], "test_acc": result.reference["test_accuracy"]},
    }


def round_record(metrics: dict) -> dict:
    """What one round did and why the next one was (not) kept: its accuracies, the actions it trained
    with, the relabels the competence gate declined and the class-share cap dropped (planned from this
    round), and the keep rule's verdict. Diagnostic only: nothing here feeds a decision."""
    comparison = metrics.get("comparison") or {}
    return {
        "round": metrics["round"], "val_acc": metrics["val_accuracy"], "test_acc": metrics["test_accuracy"],
        "actions": metrics.get("actions") or {},
        "declined": [{"message": f["message"], **{k: f["evidence"].get(k) for k in ("skill", "classes", "precision")
                                                  if k in f.get("evidence", {})}}
                     for f in metrics.get("findings") or []],
        "class_cap_dropped": metrics.get("class_cap") or {},
        "keep": None if not comparison else {
            "against": comparison.get("against"), "rule": comparison.get("rule"), "wins": comparison.get("wins"), "losses": comparison.get("losses"),
            "sign_p": comparison.get("p_value"),
            "non_inferiority_p": [t["p_value"] for t in comparison.get("non_inferiority", [])]},
    }


def summarize(rows: list[dict]) -> dict:
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)))
    out = {}
    for k in keys:
        values = [r[k] for r in rows if r.get(k) is not None]
        if values:
            out[k] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=["digits", "mnist1d"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--noise", nargs="*", default=["sym20", "sym40", "asym30"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--anchors", type=Path, default=ANCHORS)
    ap.add_argument("--skip-cleanlab", action="store_true", help="no CleanLearning (development)")
    ap.add_argument("--model", choices=["mlp", "cnn1d"], default="mlp", help="the model of every column")
    ap.add_argument("--epochs", type=int, default=40, help="the recipe's epochs, every column")
    ap.add_argument("--out", type=Path, default=_ROOT / "benchmarks" / "results" / "repair_accuracy.json")
    ap.add_argument("--merge", type=Path, nargs="*", default=None,
                    help="no training: merge these result JSONs (e.g. one per dataset) into --out and print the tables")
    args = ap.parse_args()
    if args.model == "mlp" and args.epochs != 40:
        ap.error("the MLP rows follow the anchors' recipe: 40 epochs")
    if args.merge:
        merged = json.loads(args.merge[0].read_text())
        for extra in map(json.loads, (p.read_text() for p in args.merge[1:])):
            if extra["seeds"] == merged["seeds"]:  # other data sets or noises, same seeds
                for ds, per_noise in extra["results"].items():
                    merged["results"].setdefault(ds, {}).update(per_noise)
                continue
            # One process per seed (the same data and noises in each): the per-seed rows are appended.
            if set(extra["seeds"]) & set(merged["seeds"]) or extra.get("model") != merged.get("model"):
                raise SystemExit("--merge: overlapping seeds or different models")
            merged["seeds"] = merged["seeds"] + extra["seeds"]
            for ds, per_noise in extra["results"].items():
                for noise, methods in per_noise.items():
                    for m, record in methods.items():
                        merged["results"][ds][noise][m]["per_seed"].extend(record["per_seed"])
        for per_noise in merged["results"].values():  # summaries again (the per-seed rows are the data)
            for methods in per_noise.values():
                for record in methods.values():
                    record["summary"] = summarize(record["per_seed"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(merged, indent=1) + "\n")
        print(table(merged))
        return
    common = load_anchor("common", args.anchors)
    common.setup_torch(args.threads)
    bench_b = None if args.skip_cleanlab else load_anchor("bench_b_clean_accuracy", args.anchors)
    results: dict = {"threads": args.threads, "seeds": args.seeds, "torch": torch.__version__, "results": {},
                     **({} if args.model == "mlp" else {"model": args.model, "epochs": args.epochs})}
    for ds in args.datasets:
        x, xte, y, yte = common.load_dataset(ds)
        oracle = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            oracle[seed] = {"test_acc": common.accuracy(anchor_training(common, x, y, seed, args.model, args.epochs), xte, yte),
                            "trainings": 1.0,
                            "wall_s": time.perf_counter() - t0}
        for noise in args.noise:
            kind, rate = common.NOISE_SETTINGS[noise]
            rows: dict[str, list[dict]] = {m: [] for m in METHODS}
            for seed in args.seeds:
                ours = inject_label_noise(y, kind=kind, rate=rate, seed=seed, num_classes=10,
                                          class_map=common.ASYM_MAP if kind == "asymmetric" else None)
                y_noisy, truth = common.inject_noise(y, kind, rate, seed)
                assert np.array_equal(ours.labels, y_noisy), "inject_label_noise differs from the anchors' inject_noise"
                t0 = time.perf_counter()
                net = anchor_training(common, x, y_noisy, seed, args.model, args.epochs)
                rows["plain_anchor"].append({"test_acc": common.accuracy(net, xte, yte),
                                             "trainings": 1.0, "wall_s": time.perf_counter() - t0})
                rows["plain_fit"].append(plain_fit(x, y_noisy, xte, yte, seed, args.threads, args.model, args.epochs))
                if bench_b is not None:
                    t0 = time.perf_counter()
                    if args.model == "mlp":  # the anchors' own code path
                        pp = bench_b.cv_pred_probs(x, y_noisy, seed)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            cl = bench_b.clean_learning(x, y_noisy, xte, yte, truth, seed, pp)
                    else:
                        pp = signal_models.cv_pred_probs(x, y_noisy, seed, args.model, args.epochs)
                        cl = signal_models.clean_learning(x, y_noisy, xte, yte, truth, seed, pp, args.model, args.epochs)
                    cl.update(trainings=6.0, wall_s=time.perf_counter() - t0)
                    rows["cleanlearning"].append(cl)
                rows["repair"].append(repair_run(x, y_noisy, y, truth, xte, yte, seed, args.threads, args.model,
                                                 args.epochs))
                rows["oracle"].append(oracle[seed])
                msg = {m: round(100 * r[-1]["test_acc"], 1) for m, r in rows.items() if r}
                rep = rows["repair"][-1]
                print(f"[{ds} {noise} seed {seed}] test acc {msg}; repair: rounds {rep['rounds']} best {rep['best_round']}"
                      f" relabel {rep['n_relabelled']} (precision {rep['relabel_precision']}) excluded {rep['n_excluded']}"
                      f" (precision {rep['quarantine_precision']}) trainings {rep['trainings']:.2f}", flush=True)
                for rnd in rep["per_round"]:
                    print(f"    round {rnd['round']}: test {100 * rnd['test_acc']:.1f} actions {rnd['actions']} "
                          f"keep {rnd['keep']} cap dropped {rnd['class_cap_dropped']} "
                          f"declined {[d['message'][:90] for d in rnd['declined']]}", flush=True)
            results["results"].setdefault(ds, {})[noise] = {
                m: {"per_seed": r, "summary": summarize(r)} for m, r in rows.items() if r}
            if args.out is not None:  # after every setting, so a long run leaves what it measured
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


def table(results: dict) -> str:
    """The markdown tables of benchmarks/README.md from a results JSON."""
    def cell(s: dict, key: str, scale: float = 100.0, digits: int = 1) -> str:
        return "-" if key not in s else f"{scale * s[key]['mean']:.{digits}f} ± {scale * s[key]['std']:.{digits}f}"

    names = dict(NAMES)
    if results.get("model"):  # the anchor columns train the signal model with the anchors' loop
        names.update(plain_anchor=f"plain (anchors' loop, {results['model']})",
                     oracle=f"oracle (true labels, {results['model']})")
    lines = ["| data | noise | " + " | ".join(names[m] for m in METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    cost = ["| data | noise | " + " | ".join(f"{names[m]}: trainings / wall s" for m in METHODS[1:4]) + " |",
            "|---|---|---|---|---|"]
    quality = [("| data | noise | rounds (best) | relabelled | relabel precision | excluded | quarantine precision "
                "| reweighted | correct labels before -> after |"), "|---|---|---|---|---|---|---|---|---|"]
    for ds, per_noise in results["results"].items():
        for noise, methods in per_noise.items():
            s = {m: v["summary"] for m, v in methods.items()}
            lines.append(f"| {ds} | {noise} | " + " | ".join(cell(s[m], "test_acc") if m in s else "-" for m in METHODS) + " |")
            cost.append(f"| {ds} | {noise} | " + " | ".join(
                f"{s[m]['trainings']['mean']:.2f} / {s[m]['wall_s']['mean']:.1f}" if m in s else "-" for m in METHODS[1:4]) + " |")
            r = s["repair"]
            quality.append(
                f"| {ds} | {noise} | {r['rounds']['mean']:.1f} ({r['best_round']['mean']:.1f}) | {r['n_relabelled']['mean']:.0f} "
                f"| {cell(r, 'relabel_precision', 1, 3)} | {r['n_excluded']['mean']:.0f} | {cell(r, 'quarantine_precision', 1, 3)} "
                f"| {r['n_reweighted']['mean']:.0f} | {100 * r['label_accuracy_before']['mean']:.1f} -> "
                f"{100 * r['label_accuracy_after']['mean']:.1f} |")
    return "\n".join(lines + [""] + cost + [""] + quality + [""] + rounds_table(results))


def rounds_table(results: dict) -> list[str]:
    """Per seed: every round's clean test accuracy, the round kept, and why a later round was not."""
    out = ["| data | noise | seed | test % per round (kept in bold) | relabels trained with | why the last round was not kept |",
           "|---|---|---|---|---|---|"]
    for ds, per_noise in results["results"].items():
        for noise, methods in per_noise.items():
            for seed, rep in zip(results["seeds"], methods["repair"]["per_seed"]):
                rounds = rep.get("per_round")
                if not rounds:
                    continue
                accs = " / ".join(f"**{100 * r['test_acc']:.1f}**" if r["round"] == rep["best_round"]
                                  else f"{100 * r['test_acc']:.1f}" for r in rounds)
                relabels = " / ".join(str(r["actions"].get("relabel", 0)) for r in rounds[1:]) or "-"
                declined = "; ".join(d["message"].split(":")[0] for r in rounds for d in r["declined"])
                last = rounds[-1]["keep"] or {}
                verdict = "-" if rep["best_round"] == rounds[-1]["round"] or not last else (
                    f"+{last['wins']} / -{last['losses']}, sign p = {last['sign_p']:.2g}"
                    + ("".join(f", non-inferiority p = {p:.2g}" for p in last["non_inferiority_p"])))
                out.append(f"| {ds} | {noise} | {seed} | {accs} | {relabels} | {verdict}"
                           + (f" (declined: {declined})" if declined else "") + " |")
    return out


if __name__ == "__main__":
    main()
