"""GAN benchmark: the Guard's variants x single/multi-resolution discriminator on 16x16 digits.

Per run: generative precision, recall, F1, Frechet distance, mode coverage, SSIM between samples,
wall time; per player the squared coefficient of variation of the applied (window) gradient's
norm over the second half of the run (a proxy of gradient variance, read at each optimizer step)
and the mean K; whether the run ends collapsed (the gan_mode_collapse check, any severity, on
the run's evaluated epochs).

Sections:
  main   presets {none, global_norm, guard, guard_adaptive} x discriminator {multires, single}
  ablation the default Guard less its trust region, its spike skip or its ZClip (multires)
  collapse a conventional GAN (no clipping, one discriminator head) against the Guard + adaptive
         accumulation + multi-resolution discriminator, over many seeds: the share of collapsed runs
  main_game fit_two_player's default player Guard (GuardConfig.for_games: ZClip, no loss-based
         decision) x discriminator {multires, single}, with none and global_norm re-run beside it
  heldout_game the same default against plain steps (multires) at main's 8 epochs on other seeds
  collapse_game the same default on the collapse section's seeds (multires)
  game_follow the game default with ZClip's level-shift rule on and off (zscore_follow_level_shift),
         interleaved per seed, x discriminator {multires, single}
  heldout_follow the same on/off pair, multires only (for the held-out seeds 3-12)
  collapse_default the recipe's default (global_norm multires) on the collapse section's seeds
  ksweep fixed K in {1, 2, 4, 8} and adaptive K (both players), default Guard otherwise, at equal
         samples seen (same epochs), lr scaled by sqrt(K) for fixed K (adaptive: lr x sqrt(mean K
         of its own unscaled run would be circular, so it runs at the base lr and at lr x sqrt(4)))

Usage:
  OMP_NUM_THREADS=1 python benchmarks/gan.py --section main --seeds 0 1 2 --epochs 8 --workers 2 \
      --out benchmarks/results/gan_main.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trainground.diagnosis.checks.gan_mode_collapse import gan_mode_collapse
from trainground.diagnosis.evidence import Evidence
from trainground.engine.callbacks import Callback
from trainground.engine.gan import GanConfig, PlayerOptions, digits_evaluator, guard_preset, train_gan
from trainground.engine.two_player import TwoPlayerConfig
from trainground.gradients.zscore import FOLLOW_FRACTION, ZScoreClip
from trainground.models.gan import MultiResolutionDiscriminator

METRICS = ("precision", "recall", "f1", "frechet", "mode_coverage", "ssim_intra", "ssim_nearest_real")
_EVALUATOR: Any = None


class StepStats(Callback):
    """Per player at every optimizer step (window close): the applied gradient's norm, K, whether
    ZClip clipped, and whether its level-shift rule was feeding the raw norm (firing EMA > 1/2)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[float, float, float, float]]] = {}

    def on_batch_end(self, state: Any) -> None:
        if state.window_closed:
            name = "discriminator" if isinstance(state.model, MultiResolutionDiscriminator) else "generator"
            stats = state.guard.last_stats
            norm, threshold = float(stats["grad_norm"]), float(stats["clip_threshold"])
            clip = next((t for t in state.guard.chain if isinstance(t, ZScoreClip)), None)
            following = float(clip is not None and clip.follow_level_shift and float(clip.rate) > FOLLOW_FRACTION)
            self.rows.setdefault(name, []).append((norm, float(stats["accum_k"]), float(threshold < norm), following))


def _config(preset: str, scales: tuple[int, ...], seed: int, epochs: int, *, k: int | None = None,
            lr_scale: float = 1.0, follow: bool | None = None) -> GanConfig:
    guard = guard_preset(preset)
    if follow is not None:
        guard = replace(guard, zscore_follow_level_shift=follow)
    if k is not None:
        guard = replace(guard, accumulation=k)
    lr = 2e-4 * lr_scale
    return GanConfig(
        scales=scales, seed=seed, train=TwoPlayerConfig(epochs=epochs, batch_size=64, seed=seed),
        discriminator=PlayerOptions(lr=lr, guard=guard), generator=PlayerOptions(lr=lr, guard=guard),
        eval_every=2, monitor_every=50,
    )


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    global _EVALUATOR
    torch.set_num_threads(1)
    if _EVALUATOR is None:
        _EVALUATOR = digits_evaluator(16)
    cfg = _config(job["preset"], tuple(job["scales"]), job["seed"], job["epochs"], k=job.get("k"),
                  lr_scale=job.get("lr_scale", 1.0), follow=job.get("follow"))
    stats = StepStats()
    start = time.perf_counter()
    run = train_gan(cfg, evaluator=_EVALUATOR, player_callbacks=[stats])
    seconds = time.perf_counter() - start
    epochs = pd.DataFrame([{"step": i + 1, "epoch": i, **h} for i, h in enumerate(run.result.history)])
    collapse = gan_mode_collapse(Evidence(epochs=epochs)).findings
    out = {**job, "seconds": seconds, **{k: run.final[k] for k in METRICS if k in run.final},
           "collapsed": bool(collapse), "collapse_severity": collapse[0].severity.value if collapse else None,
           "d_loss_final": run.result.history[-1]["discriminator_loss"],
           "g_loss_final": run.result.history[-1]["generator_loss"]}
    for name, rows in stats.rows.items():
        norms = np.array([r[0] for r in rows], dtype=float)
        late = norms[len(norms) // 2:]
        late = late[np.isfinite(late)]
        out[f"{name}_grad_cv2"] = float(late.var() / late.mean() ** 2) if late.size > 1 and late.mean() > 0 else math.nan
        out[f"{name}_grad_norm_mean"] = float(late.mean()) if late.size else math.nan
        out[f"{name}_mean_k"] = float(np.mean([r[1] for r in rows]))
        out[f"{name}_optimizer_steps"] = len(rows)
        out[f"{name}_clip_fired"] = int(sum(r[2] for r in rows))  # steps ZClip clipped
        out[f"{name}_follow_steps"] = int(sum(r[3] for r in rows))  # steps fed the raw norm by the rule
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}), flush=True)
    return out


def jobs_for(section: str, seeds: list[int], epochs: int) -> list[dict[str, Any]]:
    jobs = []
    if section == "main":
        for seed in seeds:  # seed-major: every variant gets its first seed before any gets a second
            for scales in ((1, 2, 4), (1,)):
                for preset in ("none", "global_norm", "guard", "guard_adaptive"):
                    jobs.append({"section": section, "preset": preset, "scales": list(scales), "seed": seed,
                                 "epochs": epochs})
    elif section == "main_game":  # fit_two_player's default (GuardConfig.for_games) against the anchors, re-run
        for seed in seeds:
            for scales in ((1, 2, 4), (1,)):
                for preset in ("game", "none", "global_norm"):
                    jobs.append({"section": section, "preset": preset, "scales": list(scales), "seed": seed,
                                 "epochs": epochs})
    elif section in ("game_follow", "heldout_follow"):  # ZClip's level-shift rule on (new default) / off
        scale_sets = ((1, 2, 4), (1,)) if section == "game_follow" else ((1, 2, 4),)
        for seed in seeds:
            for scales in scale_sets:
                for follow in (True, False):
                    jobs.append({"section": section, "preset": "game", "follow": follow, "scales": list(scales),
                                 "seed": seed, "epochs": epochs})
    elif section == "heldout_game":  # game against plain steps, multires, 8 epochs, on seeds main never saw
        for seed in seeds:
            for preset in ("game", "none"):
                jobs.append({"section": section, "preset": preset, "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
    elif section == "collapse_game":  # fit_two_player's default on the collapse section's seeds (multires)
        for seed in seeds:
            jobs.append({"section": section, "preset": "game", "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
    elif section == "ksweep":
        for seed in seeds:
            for k in (1, 2, 4, 8):
                jobs.append({"section": section, "preset": "guard", "k": k, "lr_scale": math.sqrt(k),
                             "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
            for lr_scale in (1.0, 2.0):
                jobs.append({"section": section, "preset": "guard_adaptive", "lr_scale": lr_scale,
                             "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
    elif section == "ablation":  # the default Guard less one part each
        for seed in seeds:
            for preset in ("guard_no_trust", "guard_no_spike", "guard_no_zclip"):
                jobs.append({"section": section, "preset": preset, "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
    elif section == "collapse_default":  # the recipe's default on seeds it was not chosen on
        for seed in seeds:
            jobs.append({"section": section, "preset": "global_norm", "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
    elif section == "collapse_none_multires":  # no clipping, multi-resolution, on the same seeds
        for seed in seeds:
            jobs.append({"section": section, "preset": "none", "scales": [1, 2, 4], "seed": seed, "epochs": epochs})
    elif section == "collapse":  # the spec's comparison: a conventional GAN against the whole system
        for seed in seeds:
            for preset, scales in (("none", [1]), ("guard_adaptive", [1, 2, 4])):
                jobs.append({"section": section, "preset": preset, "scales": scales, "seed": seed, "epochs": epochs})
    else:
        raise SystemExit(f"unknown section {section!r}")
    return jobs


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per variant."""
    frame = pd.DataFrame(rows)
    keys = [c for c in ("section", "preset", "follow", "k", "lr_scale") if c in frame] + ["scales_key"]
    frame["scales_key"] = frame["scales"].map(lambda s: "multires" if len(s) > 1 else "single")
    value_cols = [c for c in frame.columns if c.endswith(("_cv2", "_mean_k", "_grad_norm_mean", "_clip_fired",
                                                          "_follow_steps"))] + \
        list(METRICS) + ["seconds", "collapsed"]
    out = []
    for key, group in frame.groupby([k for k in keys], dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["seeds"] = len(group)
        for c in value_cols:
            if c in group:
                v = group[c].astype(float)
                row[c] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--section", default="main")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    jobs = jobs_for(args.section, args.seeds, args.epochs)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for row in pool.map(run_one, jobs):
            rows.append(row)
            # written after every run: a benchmark cut short still leaves what it measured
            args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                            "summary": summarize(rows),
                                            "wall_seconds": time.perf_counter() - start,
                                            "torch": torch.__version__}, indent=1) + "\n")




def markdown(path: Path) -> str:
    """The README table of a results file: mean +- std over seeds per variant."""
    data = json.loads(path.read_text())
    cols = [c for c in (*METRICS, "seconds", "collapsed", "discriminator_grad_cv2", "generator_grad_cv2",
                        "discriminator_mean_k", "generator_mean_k", "discriminator_clip_fired",
                        "generator_clip_fired", "discriminator_follow_steps", "generator_follow_steps") if any(c in r for r in data["summary"])]
    lines = ["| variant | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for r in data["summary"]:
        name = " ".join(str(r[k]) for k in ("preset", "scales_key") if k in r)
        if r.get("follow") is not None:
            name += " follow" if r["follow"] else " no-follow"
        if r.get("k") is not None and not (isinstance(r["k"], float) and math.isnan(r["k"])):
            name += f" K={int(r['k'])}"
        if "lr_scale" in r and r["lr_scale"] is not None and not math.isnan(r["lr_scale"]):
            name += f" lr x{r['lr_scale']:.2f}"
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("" if v is None else f"{v['mean']:.3g} +- {v['std']:.2g}")
        lines.append(f"| {name} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(markdown(Path(sys.argv[2])))
    else:
        main()
