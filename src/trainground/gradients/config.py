"""``GuardConfig``: the Guard's options; the defaults are the settings that won benchmark C."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from torch import nn

from trainground.bounds import AT_LEAST_ONE, POSITIVE, Range
from trainground.gradients.chain import Chain
from trainground.gradients.context import GradientTransform
from trainground.gradients.global_norm import ClipByGlobalNorm
from trainground.gradients.level_normalize import LevelNormalize
from trainground.gradients.percentile import PercentileClip
from trainground.gradients.secant import SecantTrustRegion
from trainground.gradients.spike import SpikeSkip
from trainground.gradients.zscore import ZScoreClip

# Optimizers whose update is invariant to a constant gradient scale (Adam's second moment).
ADAM_FAMILY = (torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adamax)


@dataclass
class GuardConfig:
    """How the Guard protects a training step. Each field says why its default is what it is.

    Every default is used unchanged on benchmark C (benchmarks/stability.py: both optimizers,
    all learning rates) and its extension to other architectures (benchmarks/stability_arch.py:
    CNN, LSTM/GRU on plateau-then-drop tasks, a transformer encoder): no per-case tuning.

    The principle of the default clip (fixed before the extended benchmark was run): a default
    must never be worse than no clipping on healthy learning, so it clips outliers only, never
    the norm's typical level. That is ZClip's test (``zscore``): EMA mean and variance of the
    global norm (decay 0.97, a horizon of ~33 steps), a norm more than 2.5 standard deviations
    above the mean is cut back towards it; a spike is cut, and a poisoned batch is skipped by
    ``spike_z``. A norm that grows slowly against the EMA's spread moves the EMA with it. A norm
    that jumps does not: the EMA is fed the clipped norm, so after a fast rise the threshold
    can lock (ZClip as published; since the fifth pass below the default EMA follows the raw
    norm while the clip fires on most recent steps, ``zscore_follow_level_shift``). Measured (benchmarks/README.md, "locks"): an LSTM on mnist1d leaving its plateau
    (the norm 5x within 20 steps, 10-18x later) had ZClip's threshold stay near the plateau's
    norm (~0.16) and clip 1406-1458 of its 1512 steps; the cost there was small (0.854 final
    accuracy against 0.861 without a clip, about what a fixed clip of 0.25 or 1 costs), but
    "never held down" is not what ZClip does. The former default, AutoClip's 10th
    percentile of a 1000-step history (``percentile``), clipped nine steps in ten to a level
    the norm had left long ago; under Adam that is a learning-rate cut (the second moment
    remembers the larger early gradients) and it stalled an LSTM on the adding problem (2/8
    runs solved against 5/8 without clipping). It stays available as an option (and is what
    the repair's ``tighten_clip`` switches on when a run still explodes).

    Issue 15, fourth pass: two clips for recurrent models, each principle and one adoption rule
    written before its runs (commits 892cfac and 8ff0af9), both measured and rejected, so the
    recurrent default stays spike skip + ZClip. (1) A clip at the running median of the last 100
    norms (Pascanu, Mikolov & Bengio 2013 set the clip at the norm's typical level; here
    ``percentile=50, percentile_history=100``): LSTM adding 5/8, 5/8, 4/8 on seeds 0-1, 2-3, 4-5
    against the best fixed threshold's 6/8, 5/8, 6/8 (the current default 5/8, 4/8, 4/8). As said
    in advance, a clip judged on past norms cannot cut the first steps' large gradients to the
    later plateau's level, which is what a fixed 0.1 does to Adam's second moment. (2) Gradients
    normalised to one norm under Adam (the fixed clip's limit, gradients/normalize.py): 6/8, 5/8,
    then 3/8 on the fresh seeds 4-5 (no clipping 4/8), and an LSTM order run ended above its start.
    Adoption rule: on every recurrent task (LSTM/GRU adding and order) and seed group 0-1 and 2-3,
    at least as many runs as no clipping and the best fixed threshold with 0 divergences, and on
    fresh LSTM adding seeds 4-5 at least as many as no clipping, the best fixed threshold and the
    current default. Figures: benchmarks/README.md, "C, extended, fourth pass".

    Issue 15, fifth pass: ZClip's lock, fixed from the principle above (rule and its a-priori
    fraction written in gradients/zscore.py and committed, 8bb482c, before any run): under ZClip's
    own model a z > 2.5 exceedance is rare (~0.6 % of steps), so a clip firing on more than half
    of the recent steps is clipping the norm's typical level (its median), not an outlier; then
    the EMA is fed the raw norm and follows the new level (``zscore_follow_level_shift``).
    Adoption rule (from the brief, fixed before the runs): every task of the extended benchmark
    on seeds 0-1 and 2-3 at least as many runs as the current default, the LSTM order miss of
    seeds 2-3 closed without a new loss, and the MLP sweeps' 0 failures kept. Met: LSTM order
    seeds 2-3 3/8 with 0 divergences (was 2/8 with one run ending above its start; no clipping
    and the best fixed threshold 3/8), every other task and seed group the same count, the MLP
    sweeps' clean runs identical run for run. Figures: benchmarks/README.md, "C, extended,
    fifth pass".

    Issue 15, sixth pass: what a fixed ``clip_grad_norm_(0.1)`` wins on LSTM adding is Adam's memory
    of the first steps (their norms ~10x the plateau's weigh as much as a thousand plateau steps in
    its second moment). ``recurrent_level="fall"`` (gradients/level_normalize.py, principle and rule
    committed before its runs) rescales a recurrent model's gradients by peak/level under an Adam-family
    optimizer: LSTM adding 6/8, 5/8 and 6/8 on fresh seeds 10-11, as the best fixed threshold; every
    other recurrent task at least as many runs as no clipping and the best fixed threshold.
    """

    # Mixed precision: "off" (fp32), "bf16" (bf16 autocast, no scaler), "fp16" (fp16 autocast +
    # GradScaler, CUDA), "auto" (bf16 on CPU, fp16 + GradScaler on CUDA). Off by default: on CPUs
    # without bf16 units autocast is slower, and small models gain nothing from it.
    amp: Literal["off", "auto", "bf16", "fp16"] = "off"
    # Micro-batches per optimizer step (fixed K); gradients are weighted by sample count.
    accumulation: Annotated[int, AT_LEAST_ONE] = 1
    # Adapt K to the gradient noise scale (McCandlish et al. 2018) within [2, max_accumulation];
    # two micro-batches per window are the least that lets the noise scale be measured.
    adaptive_accumulation: bool = False
    # Upper bound of the adaptive K (memory is constant; wall time per step grows with K).
    max_accumulation: Annotated[int, AT_LEAST_ONE] = 16
    # Skip a step whose log gradient norm or log loss is this many EMA std above its mean;
    # None disables. 6 is far outside healthy mini-batch noise (a poisoned batch scores > 10).
    spike_z: Annotated[float, POSITIVE] | None = 6.0
    # AutoClip percentile of the global-norm history (None: not in the chain). Off by default: it
    # clips most steps, on a plateau down to a level the norm has left (class docstring). 10 is
    # AutoClip's own choice and what the repair's tighten_clip switches on.
    percentile: Annotated[float, Range(gt=0, le=100)] | None = None
    # Norms kept for the percentile (bounded memory).
    percentile_history: Annotated[int, AT_LEAST_ONE] = 1000
    # ZClip z-score threshold (None: not in the chain): clip a norm that is an outlier of its own
    # recent level (class docstring). 2.5 is ZClip's published default, not tuned here.
    zscore: Annotated[float, POSITIVE] | None = 2.5
    # Let ZClip's statistics follow a lasting level shift of the norm: while the clip fires on more
    # than half of the recent steps (its firing EMA, ZClip's own ~33-step horizon) it is clipping the
    # norm's typical level (the median), not an outlier, so the EMA is fed the raw norm instead of the
    # clipped one (gradients/zscore.py, FOLLOW_FRACTION; rule written before its runs, issue 15 fifth
    # pass). On by default since it met its adoption rule (class docstring). False is ZClip as
    # published (its EMA fed the clipped norm, which can lock after a fast rise).
    zscore_follow_level_shift: bool = True
    # Fixed global-norm cap (None: none; a fixed cap needs tuning per model, the adaptive ones do not).
    max_norm: Annotated[float, POSITIVE] | None = None
    # Curvature-aware secant trust region on the update (the part that keeps large lrs stable).
    trust_region: bool = True
    # Largest tolerated step, as a multiple of the 1-D minimiser the secant estimates. 1.0 = the
    # step may not overshoot the minimiser along its own direction on average (rho ~ 1 is also
    # what pure mini-batch noise gives, so late in training it acts as a gentle lr decay).
    # Benchmark C: 1.2 and 1.5 left SGD at lr >= 1.33 failing (rho stayed ~1.3 while it diverged).
    trust_target: Annotated[float, POSITIVE] = 1.0
    # Measure the secant every N steps (its scale applies to every step). Each measurement costs
    # a copy and a difference of the weights plus two dot products (memory passes, most of the
    # trust region's cost on a CPU); the EMAs and the scale keep their time constants in steps.
    trust_every: Annotated[int, AT_LEAST_ONE] = 1
    # Measure it on one parameter element in N (every N-th cache line of 16 floats) where those
    # passes are memory-bound: the CPU path without a flat gradient buffer (tensors of > 64k
    # elements on average), from 2**18 parameters (1 MiB of float32, a typical L2) on. The secant
    # reads only ratios of its sums, which a uniform sample estimates without the 1/N
    # (gradients/sampled.py); the sample moves by one line per measured step, so every element is
    # read once every N steps. 8 (fixed for the bytes before any run) takes the 1M MLP's Guard step
    # from ~1.20x to ~1.14x a plain step; on benchmark C at 1.1M parameters it lost no more runs
    # than reading every element (seeds 0-19: 2 of 320 each; benchmarks/README.md "The sampled
    # secant"). 1: every element (the tensor path on CUDA always reads every element).
    trust_sample: Annotated[int, AT_LEAST_ONE] = 8
    # Let the trust region shrink the step only on evidence of overshoot: a rising loss (short EMA
    # > long EMA + 2 standard errors) with rho > target, or a flat loss with a significant
    # overshoot (excess curvature C - target*D two standard errors above 0 over the ~100 steps on
    # which the loss is judged flat, not the secant's ~10: principle 7), and then on a flat
    # loss by one decade at most below the largest scale since the last rollback; otherwise the scale
    # regrows, and the secant never takes it below 0.01 (principles in gradients/secant_gate.py).
    # Without a gate momentum's ordinary overshoot shrank healthy runs' steps ~1e5-fold (mnist1d:
    # 48-51 % validation accuracy instead of 62-65 %); the first gate ("loss not improving")
    # shrank them on every plateau (an LSTM on the adding problem stalled at 1e-4, 0/8 solved).
    trust_loss_gate: bool = True
    # A rising loss, too, shrinks the step only with an overshoot significant over the ~100 steps
    # on which the loss is judged, or when the loss doubled (principle 8 in gradients/secant_gate.py;
    # issue 15). Off: a rising loss with rho > target is evidence by itself (an LSTM's plateau
    # bumps then cost 50-100x cuts). Not the default: benchmarks/README.md, "C, extended, third pass".
    trust_rise_overshoot: bool = False
    # Keep the trust region on a model with recurrent layers (nn.RNN / LSTM / GRU). Off by default:
    # weights shared across time steps make the loss along an update anything but the quadratic
    # a secant models (the cliffs of Pascanu et al. 2013, whose remedy is a norm clip, which stays:
    # ZClip and the spike skip). Measured (issue 15; benchmarks/README.md, "Recurrent models"): with
    # it an LSTM on mnist1d ended at 0.52 accuracy instead of 0.85 (its scale held at ~0.2 on healthy
    # learning) and LSTM adding lost a run; without it every recurrent task solved as many runs or
    # more (LSTM order 2/8 vs 1/8), 0 divergences. The rule was chosen after the two LSTM cases; the
    # LSTM order, both GRU tasks and the fault-signal LSTM were measured after choosing it.
    trust_region_recurrent: bool = False
    # On a model with recurrent layers under an Adam-family optimizer, rescale the gradients by the
    # norm's ~10-step running level (gradients/level_normalize.py) so Adam's second moment does not
    # keep the first steps' ~10x larger gradients for ~1000 steps (issue 15, sixth pass):
    # "fall" = undo only a fall of the level below the one Adam still remembers (scale peak/level >= 1;
    # a rise passes), "full" = divide by the level, "off" = neither (the default before the sixth pass).
    # Only with torch.optim Adam, AdamW, NAdam, RAdam or Adamax (invariant to a constant gradient
    # scale; under SGD a rescaling changes the learning rate; measured with Adam only), and only where
    # the chain is built from the model (the Guard, fit, the Lightning and transformers callbacks; not a
    # chain given by hand). "fall" is the default:
    # it met its adoption rule, fixed before its runs (LSTM adding 6/8, 5/8 and 6/8 on fresh seeds
    # 10-11, as the best fixed threshold; every other recurrent task and seed group at least as many
    # runs as no clipping, the best fixed threshold and the previous default). "full" lost an LSTM
    # order run. Figures: benchmarks/README.md, "C, extended, sixth pass".
    recurrent_level: Literal["off", "fall", "full"] = "fall"
    # Consecutive skipped steps that make a spike "persistent": roll back to the last good state.
    rollback_after: Annotated[int, AT_LEAST_ONE] = 3
    # Each rollback multiplies the trust scale of the restored state by this (it compounds, so
    # repeated rollbacks shrink the step geometrically until the run is stable).
    rollback_trust: Annotated[float, Range(gt=0, le=1)] = 0.25
    # Steps between in-memory snapshots of model + optimizer (taken only when healthy).
    snapshot_every: Annotated[int, AT_LEAST_ONE] = 50
    # Steps between the Guard's host reads (spike streak, actions, adaptive K): one sync per N steps.
    check_every: Annotated[int, AT_LEAST_ONE] = 10

    def uses_trust_region(self, model: nn.Module | None = None) -> bool:
        """Whether the chain for ``model`` holds the secant trust region: ``trust_region``, except on
        a model with recurrent layers (``nn.RNNBase``) unless ``trust_region_recurrent``."""
        if not self.trust_region:
            return False
        return self.trust_region_recurrent or model is None or not has_recurrent_layers(model)

    @classmethod
    def for_games(cls, **overrides: object) -> GuardConfig:
        """The Guard of one player of a two-player game (a GAN's generator or discriminator).

        Principle (fixed before any run): in a game a player's own loss is not a stationary
        objective; it moves whenever the OTHER player learns (a discriminator that improves raises
        the generator's loss, and the reverse). So no decision may be taken on a player's loss:
        no spike skip (it tests the log loss, and three skips in a row roll the player back while
        its opponent keeps its lead) and no secant trust region (its gate reads the loss, and its
        curvature, the change of the gradient along the last update, also holds the opponent's
        move between the two gradients, so it does not measure this player's curvature).
        What stays is protection read from the player's own gradient: ZClip's outlier clip of
        the gradient norm (``zscore``, 2.5 as in :class:`GuardConfig`) and the Guard's skip of a
        non-finite step (always on; three in a row still restore the last snapshot).

        ``GuardConfig()`` itself is unchanged: it remains the default of ``fit``; this is the
        default of ``fit_two_player``. ``overrides`` set any other field (e.g. ``amp="bf16"``).
        """
        return cls(**{"spike_z": None, "trust_region": False, **overrides})  # type: ignore[arg-type]

    def build_chain(self, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None) -> Chain:
        """The transform chain these options describe (in order: spike, clips, level, trust region).

        With ``model``, the trust region is left out for a model with recurrent layers unless
        ``trust_region_recurrent`` (see :func:`uses_trust_region`); with ``model`` and an Adam-family
        ``optimizer``, ``recurrent_level`` adds its rescaling on a recurrent model.
        """
        steps: list[GradientTransform] = []
        if self.spike_z is not None:
            steps.append(SpikeSkip(z_skip=self.spike_z))
        if self.max_norm is not None:
            steps.append(ClipByGlobalNorm(self.max_norm))
        if self.percentile is not None:
            steps.append(PercentileClip(self.percentile, history=self.percentile_history))
        if self.zscore is not None:
            steps.append(ZScoreClip(z_thresh=self.zscore, follow_level_shift=self.zscore_follow_level_shift))
        if (self.recurrent_level != "off" and model is not None and isinstance(optimizer, ADAM_FAMILY)
                and has_recurrent_layers(model)):
            steps.append(LevelNormalize(only_up=self.recurrent_level == "fall"))
        if self.uses_trust_region(model):
            steps.append(SecantTrustRegion(target=self.trust_target, every=self.trust_every,
                                           loss_gate=self.trust_loss_gate, rise_overshoot=self.trust_rise_overshoot,
                                           sample=self.trust_sample))
        return Chain(steps)


def has_recurrent_layers(model: nn.Module) -> bool:
    """Whether ``model`` holds an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (any ``nn.RNNBase``)."""
    return any(isinstance(m, nn.RNNBase) for m in model.modules())
