"""Roll back to the last good checkpoint on a persistent spike, skipping isolated spiking batches.

The Guard already rolls back inside a run (to an in-memory snapshot, ``actions.jsonl``
``"rollback"``); this policy acts between rounds: the next round resumes from the newest
checkpoint of this round taken before the first spike, with the lr/clip changes the other
policies chose, instead of training again from scratch (``plan_edits.rollback``).

Only a loop that honours ``plan.extra["resume_from"]`` and ``["skip_samples"]`` may receive
a rollback, so the policy acts only when the loop says so with
``context.extra["resumable"] = True`` (``repair.training.round_context`` does); elsewhere it
is silent rather than recording an action nobody carries out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainground.diagnosis.checks.loss_spikes import RECURRENT
from trainground.engine.checkpoint import list_checkpoints
from trainground.engine.metrics import read_metrics
from trainground.gradients import read_actions
from trainground.repair.actions import Action
from trainground.repair.policies._training import acting
from trainground.repair.policy import RepairContext, register_policy

NAME = "rollback"


def batch_members(n_train: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Positions in the training split of the batch that made optimizer step ``step`` (1-based) of
    ``fit``: epoch ``e`` draws ``torch.randperm(n_train)`` from one generator seeded with ``seed``
    (see ``engine.loop.fit``), so the batch order of a run is a function of these three numbers."""
    steps_per_epoch = -(-n_train // batch_size)
    epoch, batch = divmod(step - 1, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epoch + 1):
        order = torch.randperm(n_train, generator=generator)
    return order[batch * batch_size : (batch + 1) * batch_size].numpy()


def persistent_spike(context: RepairContext) -> tuple[int, dict[str, Any]] | None:
    """The step of the first spike of a spike that persisted, and its evidence; None if none did.

    Persisted: a loss spike not recovered within the check's window, a non-finite loss, or a
    rollback the Guard itself had to make during the run (a streak of skipped steps)."""
    for f in acting(context, "loss_spikes"):
        first_nonfinite = f.evidence.get("first_nonfinite_step")
        if first_nonfinite is not None:
            return int(first_nonfinite), {"nonfinite_loss": True, "first_nonfinite_step": int(first_nonfinite)}
        if int(f.evidence.get("unrecovered", 0)) > 0 and f.step is not None:
            steps = [int(s) for s in f.evidence.get("spike_steps", [])]
            return int(f.step), {"spikes": int(f.evidence.get("spikes", len(steps))), "spike_steps": steps,
                                 "unrecovered": int(f.evidence["unrecovered"])}
    if context.run_dir is not None:
        path = Path(context.run_dir) / "actions.jsonl"
        guard = [r for r in read_actions(path) if r["action"] == "rollback"] if path.exists() else []
        if guard:
            skipped = guard[0]["evidence"].get("skipped_steps") or [guard[0]["step"]]
            return int(min(skipped)), {"guard_rollbacks": len(guard), "spike_steps": [int(s) for s in skipped]}
    return None


def _epoch_records(run_dir: Path) -> tuple[dict[int, dict[str, Any]], float]:
    """Epoch records of the run by step, and its initial loss (median of the first 10 finite step losses)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}, float("nan")
    records = read_metrics(path)
    first = [r["loss"] for r in records if r.get("kind") == "step" and isinstance(r.get("loss"), (int, float))][:10]
    start = float(np.median(first)) if first else float("nan")
    return {int(r["step"]): r for r in records if r.get("kind") == "epoch"}, start


def good_checkpoint(run_dir: Any, before: int) -> tuple[int, Path] | None:
    """The newest checkpoint of ``run_dir`` taken before step ``before`` that is good: the epoch it
    closed had a finite training loss below the run's initial loss (the model had learnt
    something, so resuming from it beats starting again) and a finite validation loss."""
    if run_dir is None:
        return None
    run_dir = Path(run_dir)
    epochs, start = _epoch_records(run_dir)
    good = []
    for path in list_checkpoints(run_dir / "checkpoints"):
        step = int(path.stem.split("-")[1])
        record = epochs.get(step, {})
        train_loss, val_loss = record.get("train_loss"), record.get("val_loss", 0.0)
        if (0 < step < before and isinstance(train_loss, (int, float)) and np.isfinite(train_loss)
                and train_loss < start and val_loss is not None and np.isfinite(val_loss)):
            good.append((step, path))
    return max(good) if good else None


@register_policy(NAME, kind="training", requires=("checkpoints",))
def rollback(context: RepairContext) -> list[Action]:
    """On a persistent spike, resume the next round from the last checkpoint before it (isolated spiking batches skipped)."""
    spike = persistent_spike(context) if context.extra.get("resumable") else None
    if spike is None:
        return []
    onset, evidence = spike
    # The run may have gone wrong before the spike itself: go back before the earliest finding
    # about the step size too (lr too high, exploding gradients are dated at their onset).
    dated = [f.step for c in ("lr_too_high", "exploding_gradients") for f in acting(context, c) if f.step is not None]
    onset = min([onset, *dated])
    checkpoint = good_checkpoint(context.run_dir, onset)
    if checkpoint is None:
        return []  # nothing good to go back to: the next round starts from scratch anyway
    step, path = checkpoint
    skip: list[int] = []
    spike_steps = evidence.get("spike_steps", [])
    fit = getattr(context.config, "fit", None)
    train_index = context.extra.get("train_index")
    # Fewer spikes than the check calls recurrent point at the batches (a few bad samples);
    # recurrent or non-finite ones point at the step size, which the lr/clip policies change.
    if (spike_steps and len(spike_steps) < RECURRENT and not evidence.get("nonfinite_loss")
            and fit is not None and train_index is not None):
        index = np.asarray(train_index)
        for s in spike_steps:
            skip.extend(int(i) for i in index[batch_members(len(index), fit.batch_size, fit.seed, int(s))])
    value = {"checkpoint": str(path), "skip_samples": sorted(set(skip))}
    what = f", skipping the {len(value['skip_samples'])} samples of the spiking batches" if skip else ""
    return [Action("rollback", NAME, f"spike at step {onset} persisted: resume from the checkpoint of step {step}{what}",
                   target=step, value=value, evidence={**evidence, "onset": onset})]
