"""Issue 15, third pass: trace the secant trust region's decisions and replay candidate rules.

Not a benchmark of its own: the tool behind the "third pass" section of benchmarks/README.md.
``trace`` logs, per step of the Guard's host path, the batch loss, the gate's loss EMAs and their
noise, the trend (+1 rising, 0 flat, -1 improving), ``rho``, the long-horizon excess-curvature
t statistic and the trust scale before and after. ``run`` executes another benchmark script
(``stability_arch.py``, ``stability.py``) with a candidate rule patched into
``SecantTrustRegion.host`` (host path only: the CPU benchmarks use it). ``V`` is principle 8's
second formulation (``GuardConfig(trust_rise_overshoot=True)`` at commit ca2ae25, same runs); the
option now holds the third (``V`` or a doubled loss), ``guard_p8`` in the benchmark scripts.

Candidates (``--variant``, letters combine):
  A  rho rescaled to the current step length (rho ~ step length on the quadratic model): evidence counted once
  R  A on the rising branch only
  C  a rise counts only when the short loss EMA is at least twice the long one
  S  regrow by target/rho when the shortfall is significant (excess 2 s.e. below 0 at the secant's horizon)
  G  regrow by target/rho when rho (rescaled conservatively) < target / 2
  B  regrow by target/rho whenever rho < target (principle 8 as first written)
  F  regrow a decade per secant horizon when the long-horizon overshoot is not significant
  V  a rising loss shrinks only with a significant long-horizon overshoot (principle 8, second formulation)

Usage:
    PYTHONPATH=src python benchmarks/secant_probe.py trace --trace-out trace.json
    PYTHONPATH=src python benchmarks/secant_probe.py run --variant B benchmarks/stability_arch.py \\
        --tasks adding_lstm --seeds 0 1 2 3 --methods guard --guard-label guard_B --out b.json
"""

from __future__ import annotations

import argparse
import json
import math
import runpy
import sys
from pathlib import Path

from trainground.gradients.secant import SecantTrustRegion as T
from trainground.gradients.secant_math import secant_ratio_host, trust_scale_update_host

HERE = Path(__file__).resolve().parent
LOG: list[dict] = []
MODE = ""


def _variant_host(self, ctx) -> None:
    """``SecantTrustRegion.host`` with the candidate rules of ``MODE``."""
    if ctx.flat is None and ctx.update_views is None:
        return
    self._host_state()
    rec = {"s0": float(self.scale)}
    if not hasattr(self, "_s1"):
        self._s1 = self._s2 = self._e1 = self._e2 = self._ew = 0.0
    if self.neg_update is not None and ctx.keep > 0:
        curvature = -ctx.dot(self.neg_update) * ctx.base_scale + self.last_descent
        if math.isfinite(curvature) and self.last_descent != 0:
            b = self.beta ** self.every
            self.curvature = b * self.curvature + (1 - b) * curvature
            self.descent = b * self.descent + (1 - b) * self.last_descent
            s = float(self.scale)
            self._s1, self._s2 = b * self._s1 + (1 - b) * s, b * self._s2 + (1 - b) * s * s
            s_eff = self._s2 / self._s1  # the scale at which the EMAs measured rho (C ~ s^2, D ~ s)
            overshoot = self._overshoot_host(curvature, self.last_descent, self._slow)
            min_factor, floor = self._gate_host(ctx.loss, overshoot)
            rising = self._trend_host() > 0
            if "V" in MODE and rising and not overshoot:
                min_factor, floor = self.grow, self.min_scale
            rho, grow = secant_ratio_host(self.descent, self.curvature), self.grow
            if rho > 0 and ("A" in MODE or ("R" in MODE and rising)):
                rho = rho * s / s_eff
            if "S" in MODE:
                e = curvature - self.target * self.last_descent
                self._e1, self._e2 = b * self._e1 + (1 - b) * e, b * self._e2 + (1 - b) * e * e
                self._ew = b * self._ew + (1 - b)
                m = self._e1 / self._ew
                se = math.sqrt(max(self._e2 / self._ew - m * m, 0.0) * (1 - b) / (1 + b))
                if m < -self.RISE_Z * se and 0 < rho < self.target:
                    grow = min(self.target / rho, 1 / self.min_factor)
                    min_factor = grow if min_factor >= self.grow else min_factor
            if "F" in MODE and not overshoot:
                grow = 10 ** (1 / 10)
                min_factor = grow if min_factor >= self.grow else min_factor
            if "G" in MODE and rho > 0:
                conservative = rho * max(s / s_eff, 1.0)
                if conservative < self.target / 2:
                    grow = min_factor = min(self.target / conservative, 1 / self.min_factor)
            if "B" in MODE and 0 < rho < self.target:
                grow = min(self.target / rho, 1 / self.min_factor)
                min_factor = grow if min_factor >= self.grow else min_factor
            self.scale = trust_scale_update_host(self.scale, rho, target=self.target, grow=grow,
                                                 min_factor=min_factor, min_scale=floor, power=self.every)
            mean = self.excess / self.excess_weight
            se = math.sqrt(max(self.excess_sq / self.excess_weight - mean * mean, 0.0)
                           * (1 - self._slow) / (1 + self._slow))
            slow = self.loss_slow / max(self.loss_weight_slow, 1e-12)
            rec.update(loss=ctx.loss, fast=self.loss_fast / max(self.loss_weight_fast, 1e-12), slow=slow,
                       sd=math.sqrt(max(self.loss_sq_slow / max(self.loss_weight_slow, 1e-12) - slow * slow, 0.0)),
                       trend=self._trend_host(), rho=rho, t_ex=mean / se if se > 0 else 0.0)
    if self.neg_update is not None:
        self.rho = secant_ratio_host(self.descent, self.curvature)
    rec["s1"] = float(self.scale)
    LOG.append(rec)
    ctx.update_scale = ctx.update_scale * self.scale


_plain_trend = T._trend_host


def _variant_trend(self) -> int:
    trend = _plain_trend(self)
    if trend > 0 and "C" in MODE and self.loss_fast / self.loss_weight_fast < 2.0 * self.loss_slow / self.loss_weight_slow:
        return 0
    return trend


def patch(mode: str) -> None:
    global MODE
    MODE = mode
    T.host, T._trend_host = _variant_host, _variant_trend


def trace(out: str) -> None:
    """The traced cells of the README: LSTM adding (lost and solved) and benchmark C's high-lr MLP runs."""
    sys.path.insert(0, str(HERE))
    import stability as SC
    import stability_arch as SA
    import torch
    SA.C.setup_torch(1)
    runs = {}
    adding = SA.make_tasks()["adding_lstm"]
    for i, seed in [(1, 2), (3, 2), (2, 3), (1, 3), (3, 0), (1, 1)]:
        LOG.clear()
        r = SA.run(adding(), "guard", float(SA.LRS[i]), seed)
        runs[f"lstm_lr{i}_s{seed}"] = {"run": r, "log": list(LOG)}
    xtr, xte, ytr, yte = (torch.as_tensor(a) for a in SC.C.load_dataset("digits"))
    for opt, i in [("sgd", 7), ("sgd", 6), ("sgd", 5), ("adam", 7), ("adam", 6), ("adam", 5)]:
        lrs = SC.B.SGD_LRS if opt == "sgd" else SC.B.ADAM_LRS
        for seed in (0, 1, 2):
            LOG.clear()
            clean, _ = SC.run_guard(SC.GUARDS["guard"], opt, lrs[i], seed, xtr, ytr, xte, yte, None, ())
            runs[f"{opt}_lr{i}_s{seed}"] = {"run": clean, "log": list(LOG)}
    Path(out).write_text(json.dumps(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("command", choices=["trace", "run"])
    ap.add_argument("--variant", default="")
    ap.add_argument("--trace-out", default="secant_trace.json")
    args, rest = ap.parse_known_args()  # "run": the rest is the script and its own arguments
    patch(args.variant)
    if args.command == "trace":
        return trace(args.trace_out)
    sys.path.insert(0, str(HERE))
    sys.argv = rest
    runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
