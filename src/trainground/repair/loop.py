"""The repair loop: diagnose -> policies -> apply -> retrain and diagnose again, keep the best round.

Round 0 is a diagnosis of the original data (``recipes.diagnose.diagnose_dataset``, which
``recipes.repair.repair_dataset`` passes in as ``diagnose``: ``repair/`` sits below the
recipes and never imports them).
Each later round applies the actions the policies chose from the previous round's
diagnosis (data actions to a :class:`~trainground.repair.edits.RepairState`, training
actions to a :class:`~trainground.repair.plan.TrainingPlan`), then trains and diagnoses
again on the repaired data, until the stopping rule says a round no longer helps.

**Selection without circularity.** Every decision (the stopping rule, the best round)
reads the accuracy on a validation split drawn once at the start (stratified,
``fit.val_fraction``, seeded by ``fit.seed``) whose labels the repair never changes in
training, and on whose rows no round ever trains. Relabelling validation rows to the
model's own predictions would make the validation accuracy rise whether or not the model
got better. Every row is still diagnosed: round 0 validates on the frozen rows (the
diagnosis records them in its eval passes and flags them like any other row), so their
repairs reach the *output* (``repaired.csv``), while every round is judged on their
labels as given. The repair rounds leave the frozen rows out and draw their own
validation split (early stopping, the early-learning window) from the repaired rows: a
model trained on cleaned labels and validated by loss on noisy ones would stop at once
(confident right answers on wrongly labelled rows cost a large loss).

The frozen labels are noisy, but under class-independent noise at rate ``r`` with ``K``
classes, ``acc_noisy = acc_clean * (1 - r * K / (K - 1)) + r / (K - 1)``, an increasing
function of the clean accuracy for ``r < (K - 1) / K``: ranking rounds by it ranks them
by clean accuracy. Test labels are only ever reported, never read by a decision.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from trainground.data import IndexedDataset, stratified_split
from trainground.engine import RunConfig, RunDir
from trainground.engine.evaluate import predict_logits
from trainground.engine.rng import seed_everything
from trainground.errors import ConfigError
from trainground.gradients import ActionLog
from trainground.losses import build_loss
from trainground.models import build_model
from trainground.repair.actions import Action
from trainground.repair.edits import (
    RepairState,
    RoundLoss,
    apply_data_actions,
    round_loss,
    training_view,
)
from trainground.repair.output import change_rows, write_repair_folder
from trainground.repair.plan import TrainingPlan, apply_training_actions, prepare_model
from trainground.repair.policy import RepairContext, get_policy

# Rounds after round 0. Each round costs one diagnosis (about half a training with early
# stopping); the stopping rule usually ends the loop before this cap.
MAX_ROUNDS = 3

# diagnose(data, *, fit_config, model, model_config, run_dir, extra_callbacks, guard, val_positions,
# loss_fn) -> an object with .table, .findings, .pred_probs, .fit.model, .sample_presentations,
# .run_dir: the signature of ``recipes.diagnose.diagnose_dataset``.
DiagnoseFn = Callable[..., Any]


@dataclass
class RepairResult:
    """What the repair did and how much it helped.

    Args:
        rounds: one dict per round (``metrics.json``'s ``rounds``).
        best_round: the round with the best validation accuracy (ties: the later).
        before / after: validation (and test) accuracy of round 0 and of the best round.
        stopped: why the loop stopped.
        state: the repair state of the best round (labels, exclusions, weights).
        changes: ``changes.csv`` (the per-sample changes up to the best round).
        actions: ``(round, action)`` of every applied action, rejected rounds included.
        model: the best round's trained model.
        data: the repaired training data of the best round (excluded rows left out).
        out: the repair folder, or None.
    """

    rounds: list[dict[str, Any]]
    best_round: int
    before: dict[str, Any]
    after: dict[str, Any]
    stopped: str
    state: RepairState
    changes: pd.DataFrame
    actions: list[tuple[int, Action]] = field(default_factory=list)
    model: torch.nn.Module | None = field(default=None, repr=False)
    data: IndexedDataset | None = field(default=None, repr=False)
    out: Path | None = None
    seconds: float = 0.0


def _accuracy(model: torch.nn.Module, features: torch.Tensor, labels: np.ndarray) -> float:
    device = next(model.parameters()).device
    predicted = predict_logits(model, features, device=device).argmax(1).numpy()
    return float((predicted == labels).mean()) if len(labels) else float("nan")


def _split_policies(names: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
    if names is None:
        return None, None
    specs = [get_policy(n) for n in names]
    return [s.name for s in specs if s.kind == "data"], [s.name for s in specs if s.kind == "training"]


def _run_policies(context: RepairContext, names: list[str] | None, kind: str) -> list[Action]:
    from trainground.repair.policy import run_policies

    return run_policies(context, names, kind=kind)  # type: ignore[arg-type]


def repair_loop(
    data: IndexedDataset, *, diagnose: DiagnoseFn, config: RunConfig | None = None, test: IndexedDataset | None = None,
    out: str | Path | None = None, overwrite: bool = False, max_rounds: int = MAX_ROUNDS,
    policies: Sequence[str] | None = None, frame: pd.DataFrame | None = None, target: str | None = None,
    output_format: str = "csv", console: Console | None = None, extra_callbacks: Sequence[Any] = (),
    repair_loss: RoundLoss = "gce",
) -> RepairResult:
    """Diagnose ``data``, repair it round by round, and keep the round that validates best.

    Args:
        data: the training data (every row is diagnosed and may be repaired).
        diagnose: trains once and runs every check (``recipes.diagnose.diagnose_dataset``).
        config: model, fit, loss and guard options (``RunConfig()`` when None); ``fit.val_fraction``
            sizes the frozen validation split, ``fit.seed`` seeds it and every round's model.
        test: held-out data, only reported (never used for a decision).
        out: the repair folder (see the module docstring of ``repair.output``); None keeps
            everything in memory.
        overwrite: replace an earlier repair folder at ``out``.
        max_rounds: repair rounds after round 0.
        policies: names of the policies to run (data and training); None runs every
            registered one.
        frame: the input table, row ``i`` = input index ``i``, for ``repaired.csv``; built
            from the features when None.
        target: the label column of ``frame`` (default: the schema's target or ``"label"``).
        output_format: ``"csv"`` or ``"parquet"`` for the repaired table.
        console: where progress goes (rich, stderr in the CLI); None is silent.
        extra_callbacks: more watchers of every round's training (e.g. a progress bar).
        repair_loss: the loss every round trains with, round 0 included: ``"gce"``
            (generalized cross-entropy, robust to label noise; see ``edits.round_loss``) or
            ``"ce"``. A loss the user chose in ``config.loss`` (other than ``"ce"``) is
            left as it was.

    Returns:
        The :class:`RepairResult`.
    """
    started = time.perf_counter()
    config = config or RunConfig()
    fit_config = config.fit
    if repair_loss not in ("ce", "gce"):
        raise ConfigError(f"repair_loss must be 'ce' or 'gce', got {repair_loss!r}")
    if max_rounds < 0:
        raise ConfigError(f"max_rounds must be >= 0, got {max_rounds}")
    if not 0 < fit_config.val_fraction < 1:
        raise ConfigError(f"fit.val_fraction must be in (0, 1) for repair (the frozen validation split), "
                          f"got {fit_config.val_fraction}")
    data_names, training_names = _split_policies(policies)
    folder = None if out is None else RunDir.create(out, overwrite=overwrite)
    if folder is not None:
        folder.write_config({**config.to_dict(), "repair": {
            "max_rounds": max_rounds, "repair_loss": repair_loss, "policies": list(policies) if policies is not None else "all",
            "frozen_validation": {"fraction": fit_config.val_fraction, "seed": fit_config.seed},
        }})
    if folder is not None:
        folder.record(folder.actions.name)
    log = None if folder is None else ActionLog(folder.actions)
    _, val_pos = stratified_split(data.labels.numpy(), fraction=fit_config.val_fraction, seed=fit_config.seed)
    frozen = np.zeros(len(data), dtype=bool)
    frozen[val_pos] = True
    val_features, val_labels = data.features[frozen], data.labels.numpy()[frozen]

    def run_round(k: int, state: RepairState, plan: TrainingPlan) -> tuple[Any, IndexedDataset, dict, torch.nn.Module]:
        # Round 0 validates on the frozen split (its rows are diagnosed too); the repair rounds
        # leave it out and validate (early stopping, the early-learning window) on a split of
        # their own repaired rows, whose labels then agree in kind with the training labels.
        view, view_val = training_view(data, state, frozen, with_frozen=k == 0)
        if view_val is None:
            _, view_val = stratified_split(view.labels.numpy(), fraction=plan.config.fit.val_fraction,
                                           seed=plan.config.fit.seed)
        train_rows = np.setdiff1d(np.arange(len(view)), view_val)
        seed_everything(plan.config.fit.seed)
        model = build_model(plan.config.model, input_shape=data.input_shape, num_classes=data.num_classes,
                            train_features=view.features[train_rows])
        model = prepare_model(plan, model)
        # The repair's own loss replaces the default cross-entropy only; a loss the user chose stays.
        loss = round_loss(state, data.num_classes, kind=repair_loss if plan.config.loss.name == "ce" else "ce")
        if loss is None and plan.config.loss.name != "ce":
            loss = build_loss(plan.config.loss, view.labels.numpy()[train_rows], num_classes=data.num_classes)
        run = None
        if folder is not None:
            run = RunDir.create(folder.path / f"round_{k}")
            run.write_config(plan.config.to_dict())
        t0 = time.perf_counter()
        diagnosis = diagnose(
            view, fit_config=plan.config.fit, model=model, model_config=plan.config.model, run_dir=run,
            extra_callbacks=extra_callbacks, guard=plan.config.guard, val_positions=view_val, loss_fn=loss,
        )
        # Early stopping's pick (weights at the best validation loss), chosen on validation data only.
        model = getattr(diagnosis, "best_model", None) or diagnosis.fit.model
        metrics = {
            "round": k,
            "val_accuracy": _accuracy(model, val_features, val_labels),
            "test_accuracy": None if test is None else _accuracy(model, test.features, test.labels.numpy()),
            "trainings": round(diagnosis.sample_presentations / (plan.config.fit.epochs * len(data)), 3),
            "actions": {},
            "run_dir": f"round_{k}",
            "samples": len(train_rows),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        return diagnosis, view, metrics, model

    state, plan = RepairState.initial(data), TrainingPlan(config)
    states, models, views = [state], [], []
    say = console.print if console is not None else (lambda *a, **k: None)
    say(f"[bold]round 0[/]: diagnosing {len(data)} samples ({int(frozen.sum())} held out for validation)")
    diagnosis, view, metrics, model = run_round(0, state, plan)
    rounds, models, views = [metrics], [model], [view]
    say(_round_line(metrics))
    applied_all: list[tuple[int, Action]] = []
    change_log: list[dict[str, Any]] = []
    best, stopped = 0, f"reached the maximum of {max_rounds} repair rounds"
    for k in range(1, max_rounds + 1):
        context = RepairContext(
            round=k - 1, data=view, findings=diagnosis.findings, table=diagnosis.table,
            pred_probs=diagnosis.pred_probs, history=list(rounds), config=plan.config, run_dir=diagnosis.run_dir,
            # The plan that trained the round: training policies skip edits it already holds.
            # Not "resumable": this loop retrains each round from scratch, so the rollback
            # policy (which needs a resume from a checkpoint) stays silent here.
            extra={"frozen_index": data.index.numpy()[frozen], "plan": plan},
        )
        data_actions = _run_policies(context, data_names, "data")
        training_actions = _run_policies(context, training_names, "training")
        new_state, applied = apply_data_actions(state, data_actions)
        if not applied and not training_actions:
            stopped = f"round {k - 1}'s diagnosis left nothing to repair"
            break
        change_log += change_rows(k, state, applied, data.encoder)
        state, plan = new_state, apply_training_actions(plan, training_actions)
        for action in [*applied, *training_actions]:
            applied_all.append((k, action))
            if log is not None:
                log.append(action.record(k))
        say(f"[bold]round {k}[/]: " + ", ".join(f"{n} {a}" for a, n in
                                                Counter(a.action for a in [*applied, *training_actions]).items()))
        diagnosis, view, metrics, model = run_round(k, state, plan)
        metrics["actions"] = dict(Counter(a.action for a in [*applied, *training_actions]))
        rounds.append(metrics)
        states.append(state)
        models.append(model)
        views.append(view)
        say(_round_line(metrics))
        # Stopping rule. A round at least as good as the best so far is kept: on a tie the
        # validation split gives no evidence either way, and the repaired labels are what
        # the diagnosis supports (with ~150 validation rows, ties are common). The loop goes
        # on only while rounds strictly improve; the first round that does not ends it.
        previous = rounds[best]["val_accuracy"]
        if metrics["val_accuracy"] >= previous:
            best = k
        if metrics["val_accuracy"] <= previous:
            verdict = "matched" if metrics["val_accuracy"] == previous else "did not improve"
            stopped = (f"round {k} {verdict} the validation accuracy ({metrics['val_accuracy']:.4f} vs "
                       f"{previous:.4f}); kept round {best}")
            break
    best_state = states[best]
    changes = pd.DataFrame([{k: v for k, v in row.items() if k != "round"} for row in change_log if row["round"] <= best],
                           columns=["index", "action", "old_label", "new_label", "score", "reason"])
    pick = ("val_accuracy", "test_accuracy")
    result = RepairResult(
        rounds=rounds, best_round=best, before={k: rounds[0][k] for k in pick}, after={k: rounds[best][k] for k in pick},
        stopped=stopped, state=best_state, changes=changes, actions=applied_all, model=models[best],
        data=_repaired_data(data, best_state), out=None if folder is None else folder.path,
    )
    if folder is not None:
        write_repair_folder(folder.path, result, data, frame=frame, target=target, output_format=output_format)
    result.seconds = time.perf_counter() - started
    say(f"kept round {best}: {stopped}")
    return result


def _repaired_data(data: IndexedDataset, state: RepairState) -> IndexedDataset:
    kept = np.flatnonzero(state.excluded == "")
    return data.with_labels(state.labels).subset(kept)


def _round_line(metrics: dict[str, Any]) -> str:
    test = "" if metrics["test_accuracy"] is None else f", test accuracy {metrics['test_accuracy']:.4f}"
    return (f"  round {metrics['round']}: validation accuracy {metrics['val_accuracy']:.4f}{test} "
            f"({metrics['samples']} training samples, {metrics['seconds']:.1f} s)")
