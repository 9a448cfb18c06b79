"""The Guard: one object that makes any PyTorch loop's step stable (AMP, accumulation, clipping, spikes)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainground.errors import ConfigError
from trainground.gradients.accumulation import AccumulationWindow, TaskBackward
from trainground.gradients.actions import ActionLog, action_record
from trainground.gradients.amp import LossScaling
from trainground.gradients.chain import Chain
from trainground.gradients.config import GuardConfig
from trainground.gradients.context import GradientTransform
from trainground.gradients.flat_buffer import FlatGradients, UpdateObserver, wants_flat
from trainground.gradients.noise_scale import NoiseScale
from trainground.gradients.rollback import Rollback, RollbackAware
from trainground.gradients.update import FloatStats
from trainground.gradients.window_step import host_step, tensor_step


class Guard:
    """Stable steps for any loop: autocast, sample-weighted accumulation, a transform chain,
    spike skip and rollback.

    ::

        guard = Guard(model, optimizer)
        for x, y in batches:
            with guard.autocast():
                loss = loss_fn(model(x), y)
            guard.backward(loss, batch_size=len(y))
            guard.step()    # steps the optimizer only when the accumulation window closes

    Per optimizer step: unscale (AMP) and divide by the window's sample count, run the chain
    (by default skip-on-spike, ZClip outlier clip, secant trust region), zero the gradients of a skipped
    or non-finite step, step the optimizer, scale its update by the trust region (a skipped
    step restores the old weights exactly), zero the gradients. Every ``check_every`` steps
    one host read turns skips into actions, rolls back a persistent spike to the last
    in-memory snapshot, takes a new snapshot when healthy and adapts K.

    The parts, one job each: ``amp.LossScaling`` (autocast, GradScaler),
    ``accumulation.AccumulationWindow`` (sample-weighted window, adaptive K),
    ``flat_buffer.FlatGradients`` (one buffer for the gradients, one for the update),
    ``rollback.Rollback`` (snapshots, restored through hooks of the transforms) and
    ``window_step`` (the step itself: in floats on a CPU, in tensors elsewhere, no host sync).

    Gradients from someone else's backward (a framework's, or a plain ``loss.backward()``):
    :meth:`step_external` steps on them with the Guard's chain; a :meth:`step` that finds
    gradients but no ``guard.backward`` in its window does the same and warns once (the loss
    is then unknown to the spike test and the trust region's loss gate).

    Memory: a parameter-sized flat gradient buffer when gradients accumulate (K > 1, AMP
    scaler, CUDA, or a small model with the trust region), one parameter-sized buffer for the
    update (trust region or exact skip), an in-memory snapshot of model + optimizer state, and
    one more buffer with adaptive K. The exact skip and the trust region need all parameters in
    one dtype and on one device; otherwise a skipped step only zeroes the gradient (momentum
    still moves the weights) and the trust region is off.

    Args:
        model: the model whose parameters the optimizer updates.
        optimizer: any ``torch.optim.Optimizer`` over (a subset of) the model's parameters.
        config: options (``GuardConfig()`` when omitted).
        chain: the gradient transforms (a ``Chain`` or a sequence of transforms, e.g.
            ``chain(AdaptiveClip(0.01), ClipByValue(1.0))``); they replace the ones ``config``
            describes (its spike/clip/trust fields), the rest of ``config`` still applies.
        tasks: a multi-task handler; then ``backward`` takes a mapping of per-task losses.
        actions: where actions are appended (``ActionLog`` or a path); None keeps them in memory only.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, config: GuardConfig | None = None,
                 chain: Chain | Sequence[GradientTransform] | None = None, tasks: TaskBackward | None = None,
                 actions: ActionLog | str | None = None) -> None:
        self.model, self.optimizer = model, optimizer
        self.config = config or GuardConfig()
        self.tasks = tasks
        if chain is None:
            chain = self.config.build_chain(model, optimizer)  # no trust region on a recurrent model by default
        self.chain = chain if isinstance(chain, Chain) else Chain(chain)
        # The z of the skip evidence: the chain's spike test's (GuardConfig.spike_z for the default chain).
        self._z_skip = next((t.z_skip for t in self.chain if hasattr(t, "z_skip")), None)
        self.action_log = ActionLog(actions) if isinstance(actions, str) else actions
        self.actions: list[dict[str, Any]] = []
        self.params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self._cpu = self.device.type == "cpu"
        self.amp = LossScaling(self.config.amp, self.device)
        self.window = AccumulationWindow(self.config.accumulation, adaptive=self.config.adaptive_accumulation,
                                         max_accumulation=self.config.max_accumulation, device=self.device)
        self.buffers = FlatGradients(self.params)
        self.rollback = Rollback(model, optimizer, after=self.config.rollback_after,
                                 every=self.config.snapshot_every, shrink=self.config.rollback_trust)
        self.steps = 0  # optimizer steps (windows) closed
        self._chain_key: tuple[int, ...] | None = None
        self._chain_cache: tuple[bool, list[UpdateObserver], list[RollbackAware]] = (True, [], [])
        self._flat_key: tuple[Any, ...] | None = None
        self._flat_wanted = False
        self._external = False  # the open window holds gradients from someone else's backward
        self._warned_external = False
        self._seeds: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}
        # The flat buffer pays for itself when gradients accumulate or dot products are taken; on a
        # CPU with K = 1 and no trust region the gradients stay where autograd puts them.
        self.buffers.use(self._wants_flat())
        self._pending: list[tuple[int, Any, Any, Any]] = []  # (step, keep, norm, loss) since check
        self.last_stats: Mapping[str, Tensor] = FloatStats({
            "grad_norm": 0.0, "clip_threshold": 0.0, "accum_k": float(self.k), "skipped": 0.0,
            "update_scale": 1.0, "loss": 0.0})

    # ---------------------------------------------------------- the parts
    @property
    def k(self) -> int:
        """Micro-batches per optimizer step (adapted when ``adaptive_accumulation``)."""
        return self.window.k

    @k.setter
    def k(self, value: int) -> None:
        self.window.k = int(value)

    @property
    def scaler(self) -> Any:
        """The AMP ``GradScaler`` (None without fp16)."""
        return self.amp.scaler

    @scaler.setter
    def scaler(self, value: Any) -> None:
        self.amp.scaler = value

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return self.amp.dtype

    @property
    def noise_scale(self) -> NoiseScale:
        """The gradient noise-scale statistic behind the adaptive K."""
        return self.window.noise_scale

    # The tests of the buffers and snapshots read these, as they did before the split.
    _flat = property(lambda self: self.buffers.flat)
    _old = property(lambda self: self.buffers.old)
    _snapshot = property(lambda self: self.rollback.snapshot)
    _snapshot_step = property(lambda self: self.rollback.step)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context for the forward pass: autocast in the configured precision (a no-op when off)."""
        return self.amp.autocast()

    def _chain_info(self) -> tuple[bool, list[UpdateObserver], list[RollbackAware]]:
        """(chain has a float path, its update observers, its rollback-aware transforms),
        recomputed only when the chain changes."""
        key = tuple(map(id, self.chain.transforms))
        if key != self._chain_key:
            self._chain_key = key
            self._chain_cache = (self.chain.supports_host, self.chain.with_hook("measures"),
                                 self.chain.with_hook("snapshot_state"))
        return self._chain_cache

    def _wants_flat(self) -> bool:
        """:func:`flat_buffer.wants_flat`, decided again only when K, the scaler or the chain changed."""
        host, observers, _ = self._chain_info()
        key = (self._chain_key, self.k, self.config.adaptive_accumulation, self.scaler is None)
        if key != self._flat_key:
            self._flat_key = key
            self._flat_wanted = wants_flat(
                self.buffers, cpu=self._cpu, k=self.k, adaptive=self.config.adaptive_accumulation,
                scaler=self.scaler is not None, host=host, observers=bool(observers))
        return self._flat_wanted

    def _ensure_flat(self) -> None:
        if self.buffers.ensure():
            for t in self._chain_info()[1]:
                t.adopt_update_buffer(self.buffers.old)  # type: ignore[arg-type]

    # ------------------------------------------------------------- backward
    def backward(self, loss: Tensor | Mapping[str, Tensor], *, batch_size: int | None = None) -> None:
        """Accumulate the gradient of ``loss`` (a batch mean) weighted by ``batch_size`` samples.

        The window's gradient is the sum of ``loss * batch_size`` gradients divided by the
        window's total samples at ``step``: exact for windows of unequal micro-batches.
        With ``tasks``, ``loss`` is a mapping of per-task scalar losses.
        """
        n = 1 if batch_size is None else int(batch_size)
        if self.window.micro == 0:
            self.buffers.use(self._wants_flat())  # at a window's start: the chain or K may have changed
        if self.buffers.active:
            self._ensure_flat()
        multiplier = self.window.loss_multiplier(
            n, one_loss=not isinstance(loss, Mapping), flat=self.buffers.active,
            grads=lambda: [p.grad for p in self.params if p.grad is not None])
        # The loss scale is read only where it is needed: GradScaler.get_scale() is a host sync on CUDA.
        if isinstance(loss, Mapping):
            if self.tasks is None:
                raise ConfigError("guard.backward got a mapping of task losses, but the Guard has no tasks "
                                  "handler; pass Guard(..., tasks=...) or sum the losses into one tensor")
            self.tasks.backward(loss, grad_multiplier=float(multiplier), loss_scale=self.amp.loss_scale())
            total = torch.stack([v.detach().float().reshape(()) for v in loss.values()]).sum()
        else:
            total = loss.detach()
            # A float32 loss on a CPU is read as it is (the window sums floats there): two
            # dispatches fewer than the general conversion.
            total = float(total) if self._cpu and total.dtype == torch.float32 else total.float().reshape(())
            if multiplier == 1:
                self.amp.scale(loss).backward()
            elif self.scaler is None:
                # The weight enters as the seed of backward, not as a `loss * n` node: the same
                # gradients (1 * n == n exactly), one op and one backward node fewer.
                loss.backward(self._seed(multiplier, loss))
            else:
                self.scaler.scale(loss * multiplier).backward()
        self.window.add(total, n)
        if self.window.adaptive and self.buffers.flat is not None:
            self.window.observe_micro(self.buffers.flat, self.amp.loss_scale(), n)

    def _seed(self, multiplier: int, loss: Tensor) -> Tensor:
        """A 0-dim ``multiplier`` like ``loss`` (kept: a window's batch sizes repeat)."""
        key = (multiplier, loss.dtype, loss.device)
        seed = self._seeds.get(key)
        if seed is None:
            if len(self._seeds) > 64:
                self._seeds.clear()
            seed = self._seeds[key] = torch.full((), float(multiplier), dtype=loss.dtype, device=loss.device)
        return seed

    # ----------------------------------------------------------------- step
    def step(self, *, force: bool = False) -> bool:
        """Close the accumulation window when it holds K micro-batches (or ``force``), and step.

        Gradients in ``param.grad`` that did not come through :meth:`backward` (the window is
        empty, yet there are gradients: ``loss.backward()`` was called directly) are stepped on
        as by :meth:`step_external` without a loss, with a warning the first time.

        Returns:
            True when the window closed (the optimizer stepped or the step was skipped).
        """
        if self.window.micro == 0 and self.buffers.foreign():
            if not self._warned_external:
                self._warned_external = True
                warnings.warn(
                    "guard.step() found gradients that did not come through guard.backward() (loss.backward() "
                    "called directly?); the Guard steps on them as one micro-batch, but without the loss its "
                    "spike test sees only the gradient norm. Use guard.backward(loss, batch_size=n), or "
                    "guard.step_external(loss=loss, batch_size=n) when a framework runs the backward.",
                    UserWarning, stacklevel=2)
            self._adopt(1)
            force = True
        if not self.window.closes(force=force):
            return False
        if self.rollback.snapshot is None:
            self._take_snapshot()  # the state before the first update is the first good state
        scaled = not self._external  # someone else's gradients never saw our loss scale
        if scaled:
            self.amp.unscale_(self.optimizer)  # before any transform sees a norm
        host, observers, _ = self._chain_info()
        base = self.window.base_scale
        if self._cpu and self.scaler is None and host:
            result = host_step(self.chain, self.optimizer, self.buffers, base=base,
                               loss=self.window.mean_loss(tensor=False),  # type: ignore[arg-type]
                               observers=observers if self.buffers.same_layout else [])
            self.last_stats = FloatStats({
                "grad_norm": result.norm, "clip_threshold": result.threshold, "accum_k": float(self.k),
                "skipped": 1.0 - result.keep, "update_scale": result.update_scale, "loss": result.loss})
        else:
            result = tensor_step(self.chain, self.optimizer, self.buffers, self.amp, base=base,
                                 loss=self.window.mean_loss(tensor=True), scaled=scaled)  # type: ignore[arg-type]
            self.last_stats = {
                "grad_norm": result.norm, "clip_threshold": result.threshold,
                "accum_k": torch.full_like(result.norm, self.k), "skipped": 1.0 - result.keep,
                "update_scale": result.update_scale, "loss": result.loss}
        self.window.observe_window(result.norm)
        self._pending.append((self.steps, result.keep, result.norm, result.loss))
        self.zero_grad()
        self.steps += 1
        if self.steps % self.config.check_every == 0:
            self.check()
        return True

    def step_external(self, *, loss: Tensor | float | None = None, batch_size: int | None = None) -> bool:
        """Step on the gradients someone else's backward left in ``param.grad`` (Lightning, the
        transformers ``Trainer``, a plain ``loss.backward()``): one whole window, through the
        Guard's chain, skip, rollback and statistics, as :meth:`step` does for its own.

        The gradients are taken as they are: the mean gradient of ``batch_size`` samples at true
        scale (a framework's AMP must have unscaled them; the Guard's own loss scale is not
        applied). The Guard's accumulation (K) does not apply: the caller decided this is a step.

        Args:
            loss: the mean loss of those samples (lets the spike test and the trust region's loss
                gate see it; None: the norm alone decides).
            batch_size: samples behind the gradients (recorded in the window; 1 when omitted).

        Returns:
            True when a step was taken or skipped, False when no parameter has a gradient.
        """
        if self.window.micro > 0:
            raise ConfigError("guard.step_external() with micro-batches of guard.backward() still open in the "
                              "window; call guard.step(force=True) first, or use one of the two, not both")
        if all(p.grad is None for p in self.params):
            return False
        total = None if loss is None else torch.as_tensor(loss).detach().float().reshape(()).to(self.device)
        self._adopt(1 if batch_size is None else int(batch_size), total)
        return self.step(force=True)

    def _adopt(self, n: int, loss: Tensor | None = None) -> None:
        if self.buffers.active:
            self._ensure_flat()  # a grad the user replaced is copied into the buffer
        self.window.adopt(n, loss)
        self._external = True

    def zero_grad(self) -> None:
        """Empty the accumulation window (the flat buffer is zeroed in one kernel)."""
        self.buffers.zero()
        self.window.reset()
        self._external = False

    # ------------------------------------------------- host-side escalation
    def check(self) -> None:
        """One host read: record skips, roll back a persistent spike, snapshot when healthy, adapt K."""
        if not self._pending:
            return
        steps = [p[0] for p in self._pending]
        if all(isinstance(v, float) for p in self._pending for v in p[1:]):
            rows = [list(p[1:]) for p in self._pending]  # the CPU path recorded floats: nothing to read
        else:
            rows = torch.stack([torch.stack([torch.as_tensor(v, device=self.device).float().reshape(())
                                             for v in p[1:]]) for p in self._pending]).tolist()
        noise = self.window.noise()
        self._pending.clear()
        skipped = [(s, norm, loss) for s, (keep, norm, loss) in zip(steps, rows, strict=True) if keep == 0]
        longest = self.rollback.count([keep for keep, _, _ in rows])
        for s, norm, loss in skipped:
            self._record(s, "skip", "gradient norm or loss is a spike (or not finite); update not applied",
                         {"grad_norm": norm, "loss": loss, "z_skip": self._z_skip})
        if self.rollback.due(longest):
            self._rollback(steps[-1], longest, skipped)
        elif not skipped and self.rollback.snapshot_due(steps[-1] + 1):
            self._take_snapshot()
        if not math.isnan(noise):
            change = self.window.adapt(noise)
            if change is not None:
                self._record(steps[-1], "accumulation", "micro-batches per step follow the gradient noise scale",
                             change)

    def _record(self, step: int, action: str, reason: str, evidence: dict[str, Any]) -> None:
        record = action_record(step, action, reason, evidence)
        self.actions.append(record)
        if self.action_log is not None:
            self.action_log.append(record)

    def _take_snapshot(self) -> None:
        self.rollback.take(self.steps, self._chain_info()[2])

    def _rollback(self, step: int, streak: int, skipped: list[tuple[int, float, float]]) -> None:
        restored = self.rollback.restore()
        self._ensure_flat()
        self._record(step, "rollback", f"{streak} consecutive skipped steps (a persistent spike); restored the "
                     f"state of step {restored} and dropped the batches since",
                     {"restored_step": restored, "streak": streak, "skipped_steps": [s for s, _, _ in skipped]})

    # ------------------------------------------------------------ state
    @property
    def grad_scale(self) -> Tensor | float:
        """How many times ``param.grad`` exceeds the mean gradient of the samples accumulated
        so far in this window (their count, times the AMP loss scale). Between ``backward`` and
        ``step``, divide gradient norms by it to read them at true scale."""
        # grads * grad_factor is the window's sum of batch_size * mean gradient (grad_factor is
        # the batch size on the direct K = 1 path, 1 once gradients are accumulated as sums).
        return self.window.samples * self.amp.loss_scale() / self.window.grad_factor

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes the trajectory: chain statistics, K, noise scale, scaler, window."""
        return {
            "chain": self.chain.state_dict(), "k": self.k, "steps": self.steps,
            "noise_scale": self.window.noise_scale.state_dict(), "scaler": self.amp.state_dict(),
            "snapshot_step": self.rollback.step,
            "last_stats": {k: v.detach().cpu().clone() for k, v in self.last_stats.items()},
            "window": self.window.state_dict(None if self.window.micro == 0 else self.buffers.state()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.chain.load_state_dict(state["chain"])
        self.k, self.steps = int(state["k"]), int(state["steps"])
        self.window.noise_scale.load_state_dict(state["noise_scale"])
        self.amp.load_state_dict(state.get("scaler"))
        self.last_stats = {k: v.to(self.device) for k, v in state.get("last_stats", self.last_stats).items()}
        self._ensure_flat()
        self.window.load_state_dict(state["window"])
        self.buffers.load(state["window"]["grads"])
        if self.buffers.same_layout:
            self.buffers.ensure_old()
            for t in self._chain_info()[1]:
                t.adopt_update_buffer(self.buffers.old)  # type: ignore[arg-type]
        # The snapshot itself is not saved: after a resume the loaded state is the last good one.
        self._take_snapshot()
        self.rollback.step = int(state["snapshot_step"]) if state["snapshot_step"] >= 0 else self.steps

    def iter_actions(self) -> Iterator[dict[str, Any]]:
        return iter(self.actions)
