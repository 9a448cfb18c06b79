"""Benchmark: the diagnosis inside your own training vs ``trainground diagnose``.

Three measurements:

  f1        Label-issue F1 on the anchors' protocol A (digits and mnist1d, 80/20 split,
            standardised, sym20 / asym30 noise on the train split, noise seed = model seed),
            the same data, split (stratified 10 % validation, seed = noise seed), model (the
            built-in MLP 256-256 from the same seed) and recipe (Adam 1e-3, batch 64, at most
            40 epochs, stop 5 epochs after the best validation loss) through four routes:
              diagnose          ``diagnose_dataset`` with its second pass (the CLI's default)
              diagnose-1pass    ``diagnose_dataset`` with second_pass=False (what one
                                recorded run gives, the integrations' setting)
              plain-loop        ``Watch`` in an ordinary DataLoader loop
              lightning         ``TraingroundCallback`` in a Lightning Trainer
              plain-loop+2pass  ``Watch`` + ``finish(second_pass=SecondPass(...))``
              lightning+2pass   ``TraingroundCallback(second_pass=SecondPass(...))``
                                (the second pass retrains a fresh copy of the same initial
                                model with the same recipe, as ``diagnose`` does)
            Sample checks only in the diagnose routes (training_checks=None); the
            integrations run with their defaults (training checks on).
  overhead  Per-step wall and CPU (process) time of a Lightning fit with the callback (monitors
            at their default sampling, chain on; also without the monitors, without the chain,
            with the full Guard, without the features, records only, and an empty callback
            with the same hooks: Lightning's dispatch alone) over the same bare fit; one untimed fit of each first, then
            interleaved repeats in one process, timed from on_train_start to on_train_end,
            validation included (the callback's finish, i.e. the checks and the report, is
            timed separately). CPU time is the steadier figure on a shared machine; the
            per-repeat ratio (each variant over the bare fit of its own repeat) cancels drift.
            --variants picks some; --overhead-hidden 1024 1024 times a wider MLP (kept under
            its own key in --out).
  hooks     Thread CPU time spent in each of the callback's hooks per training step (the
            callback at its defaults, --overhead-epochs epochs, --repeats fits): where the
            overhead is, steady under load.
  ddp       examples/torchrun_loop.py with 2 processes (torchrun, gloo) vs 1 process:
            wall seconds, flags, agreement.

Usage: python benchmarks/own_training.py [--datasets digits mnist1d] [--noise sym20 asym30]
       [--seeds 0 1 2] [--routes ...] [--parts f1 overhead ddp] [--out benchmarks/results/own_training.json]
       (--routes runs some routes only; the other routes' rows of --out are kept)
       (--parts with no name prints the tables of --out)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_errors import ANCHORS, load_anchor, prf  # noqa: E402

from trainground.data import IndexedDataset, LabelEncoder, WithIndex, stratified_split  # noqa: E402
from trainground.diagnosis.dataset import DatasetDiagnosisConfig, diagnose_dataset  # noqa: E402
from trainground.engine import FitConfig  # noqa: E402
from trainground.engine.rng import seed_everything  # noqa: E402
from trainground.integrations import SecondPass, Watch  # noqa: E402
from trainground.models import ModelConfig, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("diagnose", "diagnose-1pass", "plain-loop", "lightning", "plain-loop+2pass", "lightning+2pass")
warnings.filterwarnings("ignore")


def _model(x: torch.Tensor, train_pos: np.ndarray, seed: int, hidden: tuple[int, ...] | None = None) -> torch.nn.Module:
    """The built-in MLP (``hidden`` widths, default 256-256) for ``[N, F]`` rows; the built-in
    SmallCNN (channels 32-64) for ``[N, C, H, W]`` images (see :func:`digit_images`)."""
    seed_everything(seed)
    if x.ndim == 4:
        return build_model(ModelConfig(name="cnn"), input_shape=tuple(x.shape[1:]), num_classes=10,
                           train_features=x[train_pos])
    config = ModelConfig() if hidden is None else ModelConfig(hidden=tuple(hidden))
    return build_model(config, input_shape=(x.shape[1],), num_classes=10, train_features=x[train_pos])


def digit_images(x: torch.Tensor, side: int = 16) -> torch.Tensor:
    """Digits' 64 features as ``[N, 1, side, side]`` images (each 8x8 pixel repeated: nearest
    upsampling), the input of a small CNN whose step is ~5-10x the MLP's (the overhead
    benchmarks' second model)."""
    k = side // 8
    return x.reshape(-1, 1, 8, 8).repeat_interleave(k, dim=2).repeat_interleave(k, dim=3).contiguous()


def route_diagnose(x, y, seed, model, second_pass):
    data = IndexedDataset(features=x, labels=y, index=torch.arange(len(y)), encoder=LabelEncoder(tuple(range(10))),
                          kind="table", name="bench")
    config = DatasetDiagnosisConfig(fit=FitConfig(epochs=40, lr=1e-3, batch_size=64, seed=seed, device="cpu"),
                                    second_pass=second_pass, training_checks=None)
    return diagnose_dataset(data, config, model=model).table


def route_plain(x, y, seed, model, train_pos, val_pos, second_pass=None):
    order = np.concatenate([train_pos, val_pos])  # Watch indexes train then val; map back at the end
    data = TensorDataset(x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    watch = Watch(model, optimizer, Subset(data, train_pos.tolist()), Subset(data, val_pos.tolist()))
    loader = DataLoader(watch.train_data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    for _ in range(40):
        model.train()
        for index, xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            watch.backward(loss, index=index, logits=logits, labels=yb)
            watch.step()
        model.eval()
        with torch.no_grad():
            for index, xb, yb in DataLoader(watch.val_data, batch_size=1024):
                watch.record_val(index, model(xb), yb)
        if watch.end_epoch():
            break
    table = watch.finish(second_pass=second_pass).table
    return table.assign(index=order[table["index"].to_numpy()])


def route_lightning(x, y, seed, model, train_pos, val_pos, *, callback=True, epochs=40, second_pass=None,
                    options=None):
    import pytorch_lightning as pl

    from trainground.integrations.lightning import TraingroundCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def training_step(self, batch, i):
            _, xb, yb = batch
            logits = self.net(xb)
            return {"loss": F.cross_entropy(logits, yb), "logits": logits}

        def validation_step(self, batch, i):
            _, xb, yb = batch
            logits = self.net(xb)
            return {"loss": F.cross_entropy(logits, yb), "logits": logits}

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    order = np.concatenate([train_pos, val_pos])
    data = TensorDataset(x, y)
    train = WithIndex(Subset(data, train_pos.tolist()))
    val = WithIndex(Subset(data, val_pos.tolist()), offset=len(train_pos))
    timer = StepTimer()
    options = {"stop_early": True, **(options or {})}
    clip = options.pop("gradient_clip_val", None)  # Lightning's own clipping (a baseline's)
    if options.pop("empty", False):  # the floor: a callback with the same hooks doing nothing
        cbs = [timer, empty_callback()]
        callback = False
    else:
        cbs = [timer] + ([TraingroundCallback(second_pass=second_pass, **options)] if callback else [])
    trainer = pl.Trainer(max_epochs=epochs, callbacks=cbs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         gradient_clip_val=clip)
    t0 = time.perf_counter()
    trainer.fit(Module(), DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed)),
                DataLoader(val, batch_size=1024))
    total = time.perf_counter() - t0
    if not callback:
        return None, timer, total
    table = cbs[1].result.table
    return table.assign(index=order[table["index"].to_numpy()]), timer, total


class StepTimer:
    """Wall time from on_train_start to on_train_end, and the steps in between (a Lightning callback)."""

    def __new__(cls):
        import pytorch_lightning as pl

        class _Timer(pl.Callback):
            # Also the CPU time of each epoch (from one epoch's start to the next's, the last to
            # on_train_end: validation and every callback's epoch end included): the same epoch of
            # two fits does the same work, so its minimum over repeats filters a loaded machine's
            # noise without dropping the rare costly epochs (see overhead_ab.py).
            def on_train_start(self, trainer, module):
                self.t0, self.c0 = time.perf_counter(), time.process_time()
                self.epoch_cpu, self._mark = [], self.c0

            def on_train_epoch_start(self, trainer, module):
                now = time.process_time()
                if trainer.current_epoch > 0:
                    self.epoch_cpu.append(now - self._mark)
                self._mark = now

            def on_train_end(self, trainer, module):
                self.seconds, self.steps = time.perf_counter() - self.t0, trainer.global_step
                self.cpu_seconds = time.process_time() - self.c0
                self.epoch_cpu.append(time.process_time() - self._mark)

        return _Timer()


def empty_callback():
    """A Lightning callback overriding the hooks ``TraingroundCallback`` uses, each doing nothing:
    what any callback costs in Lightning's dispatch (the floor of the overhead)."""
    import pytorch_lightning as pl

    from trainground.integrations.lightning import TraingroundCallback

    hooks = ("on_train_batch_start", "on_before_backward", "on_before_optimizer_step",
             "on_train_batch_end", "on_validation_batch_end", "on_train_epoch_end", "on_fit_end")
    missing = [h for h in hooks if h not in vars(TraingroundCallback)]
    assert not missing, missing  # keep the floor's hooks those of the callback
    return type("EmptyCallback", (pl.Callback,), {h: (lambda self, *a, **k: None) for h in hooks})()


def f1_part(args, common, previous: dict) -> dict:
    out: dict = copy.deepcopy(previous)  # routes not run now keep their earlier rows
    for ds in args.datasets:
        x_np, _, y_np, _ = common.load_dataset(ds)
        x = torch.from_numpy(x_np)
        for noise in args.noise:
            kind, rate = common.NOISE_SETTINGS[noise]
            for seed in args.seeds:
                y_noisy, truth = common.inject_noise(y_np, kind, rate, seed)
                y = torch.from_numpy(y_noisy)
                train_pos, val_pos = stratified_split(y_noisy, fraction=0.1, seed=seed)
                initial = _model(x, train_pos, seed)
                row = out.get(ds, {}).get(noise, {}).get(str(seed), {})
                for name in args.routes:
                    torch.manual_seed(seed)
                    model = copy.deepcopy(initial)
                    # The second pass retrains a fresh copy of the same initial model with the
                    # recipe of the first (trainground diagnose's second pass does the same).
                    recipe = FitConfig(epochs=40, lr=1e-3, batch_size=64, seed=seed, device="cpu")
                    second = SecondPass(model=copy.deepcopy(initial), fit=recipe) if name.endswith("+2pass") else None
                    t0 = time.perf_counter()
                    if name.startswith("diagnose"):
                        table = route_diagnose(x, y, seed, model, second_pass=name == "diagnose")
                    elif name.startswith("plain-loop"):
                        table = route_plain(x, y, seed, model, train_pos, val_pos, second_pass=second)
                    else:
                        table = route_lightning(x, y, seed, model, train_pos, val_pos, second_pass=second)[0]
                    flag = table.set_index("index").sort_index()["is_label_issue"].to_numpy(dtype=bool)
                    row[name] = {**prf(flag, truth), "wall_s": time.perf_counter() - t0}
                out.setdefault(ds, {}).setdefault(noise, {})[str(seed)] = row
                print(f"[{ds} {noise} seed {seed}] F1 " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in row.items()),
                      flush=True)
    return out


OVERHEAD_VARIANTS = {
    "bare": None,
    "empty-callback": {"empty": True},  # the same hooks doing nothing: Lightning's dispatch alone
    "callback": {},  # the defaults: monitors sampled 1 step in 20, records, features, the chain
    "callback-no-monitors": {"config": "no-monitors"},  # SessionConfig(training_checks=None)
    "callback-no-chain": {"guard": None},  # no gradient chain (no clip, no spike skip)
    "callback-full-guard": {"full_guard": True},
    "callback-no-features": {"config": "no-features"},  # SessionConfig(features=False)
    "callback-records-only": {"guard": None, "config": "records-only"},  # no chain, monitors or features
}


def overhead_part(args, common) -> dict:
    from trainground.integrations import SessionConfig

    x_np, _, y_np, _ = common.load_dataset("digits")
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    train_pos, val_pos = stratified_split(y_np, fraction=0.1, seed=0)
    variants = {name: OVERHEAD_VARIANTS[name] for name in ["bare", *args.variants] if name in OVERHEAD_VARIANTS}
    runs: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
    for repeat in range(-1, args.repeats):  # repeat -1: an untimed fit of each (imports, first kernels, LAPACK)
        for name, options in variants.items():  # interleaved: machine drift hits every variant
            if options and isinstance(options.get("config"), str):
                options = {**options, "config": {
                    "no-monitors": SessionConfig(training_checks=None), "no-features": SessionConfig(features=False),
                    "records-only": SessionConfig(training_checks=None, features=False)}[options["config"]]}
            model = _model(x, train_pos, 0, args.overhead_hidden)
            _, timer, total = route_lightning(
                x, y, 0, model, train_pos, val_pos, callback=options is not None,
                epochs=args.overhead_epochs, options={"stop_early": False, **(options or {})})
            if repeat < 0:
                continue
            runs[name]["wall"].append(timer.seconds / timer.steps)
            runs[name]["cpu"].append(timer.cpu_seconds / timer.steps)
            if options is not None:
                runs[name].setdefault("finish_s", []).append(total - timer.seconds)
    out: dict = {"per_step_s": runs, "epochs": args.overhead_epochs, "repeats": args.repeats,
                 "hidden": list(args.overhead_hidden or ModelConfig().hidden)}
    for clock in ("wall", "cpu"):
        bare = np.median(runs["bare"][clock])
        out[f"ratio_{clock}"] = {name: float(np.median(r[clock]) / bare) for name, r in runs.items()}
        # Ratio of each repeat's variant to the bare fit run just before it: drift cancels within a repeat.
        out[f"per_repeat_ratio_{clock}"] = {name: [float(a / b) for a, b in zip(r[clock], runs["bare"][clock])]
                                           for name, r in runs.items()}
    print(f"per-step ratios over bare Lightning: wall {out['ratio_wall']}, cpu {out['ratio_cpu']}", flush=True)
    return out


HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
         "on_train_batch_end", "on_validation_batch_end", "on_train_epoch_end")


def hooks_part(args, common) -> dict:
    """CPU time of the callback's own hooks per training step (thread CPU time, so waiting for
    a core on a loaded machine is not counted); a warm-up fit first, then ``--repeats`` fits."""
    from trainground.integrations.lightning import TraingroundCallback

    spent = {name: 0.0 for name in HOOKS}
    originals = {name: getattr(TraingroundCallback, name) for name in HOOKS}

    def timed(name, method):
        def wrapper(self, *a, **k):
            t0 = time.thread_time()
            try:
                return method(self, *a, **k)
            finally:
                spent[name] += time.thread_time() - t0
        return wrapper

    x_np, _, y_np, _ = common.load_dataset("digits")
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    train_pos, val_pos = stratified_split(y_np, fraction=0.1, seed=0)
    for name, method in originals.items():
        setattr(TraingroundCallback, name, timed(name, method))
    try:
        route_lightning(x, y, 0, _model(x, train_pos, 0), train_pos, val_pos, epochs=1)  # warm-up
        for name in spent:
            spent[name] = 0.0
        steps = 0
        for _ in range(args.repeats):
            _, timer, _ = route_lightning(x, y, 0, _model(x, train_pos, 0), train_pos, val_pos,
                                          epochs=args.overhead_epochs, options={"stop_early": False})
            steps += timer.steps
    finally:
        for name, method in originals.items():
            setattr(TraingroundCallback, name, method)
    per_step = {name: 1e3 * v / steps for name, v in spent.items()}
    print("hook CPU ms per step: " + ", ".join(f"{k} {v:.3f}" for k, v in per_step.items())
          + f"; total {sum(per_step.values()):.3f}", flush=True)
    return {"cpu_ms_per_step": per_step, "total_cpu_ms_per_step": sum(per_step.values()), "steps": steps}


def ddp_part(args, tmp: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    example = ROOT / "examples" / "torchrun_loop.py"
    torchrun = Path(sys.executable).with_name("torchrun")
    out: dict = {}
    for procs in (1, 2):
        run = tmp / f"ddp{procs}"
        cmd = [sys.executable, str(example), str(run)] if procs == 1 else [
            str(torchrun), "--nproc_per_node", "2", "--master_port", "29577", str(example), str(run)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        table = pd.read_csv(run / "sample_issues.csv").set_index("index").sort_index()
        out[str(procs)] = {"wall_s": time.perf_counter() - t0, "line": done.stdout.strip().splitlines()[-1],
                           "flagged": table.index[table.is_label_issue].tolist()}
    a, b = set(out["1"]["flagged"]), set(out["2"]["flagged"])
    out["jaccard"] = len(a & b) / max(len(a | b), 1)
    print(f"ddp: 1 proc {out['1']['wall_s']:.1f}s, 2 procs {out['2']['wall_s']:.1f}s, jaccard {out['jaccard']:.3f}")
    for k in ("1", "2"):
        out[k]["n_flagged"] = len(out[k].pop("flagged"))
    return out


def print_tables(results: dict) -> None:
    """Markdown tables of what ``results`` holds (mean ± std over seeds; population std)."""
    if "f1" in results:
        pairs = (("plain-loop", "diagnose-1pass"), ("lightning", "diagnose-1pass"),
                 ("plain-loop+2pass", "diagnose"), ("lightning+2pass", "diagnose"))
        print("| data | noise | " + " | ".join(ROUTES) + " | " + " | ".join(f"{a} - {b}" for a, b in pairs) + " |")
        print("|---|---|" + "---|" * (len(ROUTES) + len(pairs)))
        for ds, by_noise in results["f1"].items():
            for noise, by_seed in by_noise.items():
                f1 = {r: np.array([row[r]["f1"] for row in by_seed.values()]) for r in ROUTES
                      if all(r in row for row in by_seed.values())}
                cells = [f"{f1[r].mean():.3f} ± {f1[r].std():.3f}" if r in f1 else "-" for r in ROUTES]
                cells += [f"{(f1[a] - f1[b]).mean():+.3f}" if a in f1 and b in f1 else "-" for a, b in pairs]
                print(f"| {ds} | {noise} (seeds {', '.join(by_seed)}) | " + " | ".join(cells) + " |")
    for key, o in results.items():
        if not key.startswith("overhead") or "ratio_wall" not in o:
            continue
        print(f"{key} (MLP {'-'.join(map(str, o.get('hidden', [256, 256])))}):")
        print("| variant | wall ms/step | wall ratio | CPU ms/step | CPU ratio | per-repeat CPU ratio, median [IQR] |")
        print("|---|---|---|---|---|---|")
        for name, r in o["per_step_s"].items():
            per = np.array(o.get("per_repeat_ratio_cpu", {}).get(name, [np.nan]))
            print(f"| {name} | {np.median(r['wall']) * 1e3:.2f} | {o['ratio_wall'][name]:.3f} | "
                  f"{np.median(r['cpu']) * 1e3:.2f} | {o['ratio_cpu'][name]:.3f} | {np.median(per):.3f} "
                  f"[{np.percentile(per, 25):.3f}, {np.percentile(per, 75):.3f}] |")
    if "ddp" in results:
        d = results["ddp"]
        print(f"ddp: 1 process {d['1']['wall_s']:.1f} s ({d['1']['n_flagged']} flagged), 2 processes "
              f"{d['2']['wall_s']:.1f} s ({d['2']['n_flagged']} flagged), Jaccard {d['jaccard']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=["digits", "mnist1d"])
    ap.add_argument("--noise", nargs="*", default=["sym20", "asym30"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--parts", nargs="*", default=["f1", "overhead", "ddp"])
    ap.add_argument("--routes", nargs="*", default=list(ROUTES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--overhead-epochs", type=int, default=10)
    ap.add_argument("--overhead-hidden", type=int, nargs="*", default=None,
                    help="MLP widths of the overhead fits (default: the built-in 256-256)")
    ap.add_argument("--variants", nargs="*", default=[n for n in OVERHEAD_VARIANTS if n != "bare"],
                    help="overhead variants timed against the bare fit")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/own_training_bench"))
    args = ap.parse_args()
    common = load_anchor("common", ANCHORS)
    common.setup_torch(1)
    results: dict = {"threads": 1, "seeds": args.seeds, "machine": "2 shared CPU cores, loaded by other jobs"}
    previous = json.loads(args.out.read_text()) if args.out is not None and args.out.exists() else {}
    results = {**previous, **results}
    if "f1" in args.parts:
        results["f1"] = f1_part(args, common, previous.get("f1", {}))
    if "overhead" in args.parts:  # another model's figures are kept beside the default's
        key = "overhead" if not args.overhead_hidden else "overhead_" + "x".join(map(str, args.overhead_hidden))
        results[key] = overhead_part(args, common)
    if "hooks" in args.parts:
        results["hooks"] = hooks_part(args, common)
    if "ddp" in args.parts:
        results["ddp"] = ddp_part(args, args.tmp)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")
    print_tables(results)


if __name__ == "__main__":
    main()
