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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from trainground.data import IndexedDataset, stratified_split
from trainground.diagnosis.dataset import validate_for_diagnosis
from trainground.engine import RunConfig, RunDir
from trainground.engine.evaluate import predict_logits
from trainground.engine.model_file import read_model_file, save_model
from trainground.engine.rng import seed_everything
from trainground.errors import ConfigError
from trainground.gradients import ActionLog
from trainground.losses import build_loss
from trainground.models import build_model
from trainground.repair.class_share import cap_class_loss, class_mass, given_mass
from trainground.repair.competence import label_noise_estimate, measure_competence
from trainground.repair.edits import (
    RepairState,
    RoundLoss,
    apply_data_actions,
    round_loss,
    training_view,
)
from trainground.repair.fixed import FixedLabels, drop_fixed, fixed_actions
from trainground.repair.output import change_rows, write_repair_folder
from trainground.repair.plan import TrainingPlan, apply_training_actions, prepare_model
from trainground.repair.policy import RepairContext, get_policy, run_policies_reporting
from trainground.repair.result import RepairResult
from trainground.repair.rounds import Planned, RoundOutcome, run_rounds

# Rounds after round 0. Each round costs one diagnosis (about half a training with early
# stopping); the stopping rule usually ends the loop before this cap.
MAX_ROUNDS = 3

# diagnose(data, *, fit_config, model, model_config, run_dir, extra_callbacks, guard, val_positions,
# loss_fn) -> an object with .table, .findings, .pred_probs, .fit.model, .sample_presentations,
# .run_dir: the signature of ``recipes.diagnose.diagnose_dataset``.
DiagnoseFn = Callable[..., Any]


def _predicted(model: torch.nn.Module, features: torch.Tensor) -> np.ndarray:
    device = next(model.parameters()).device
    return predict_logits(model, features, device=device).argmax(1).numpy()


def _accuracy(model: torch.nn.Module, features: torch.Tensor, labels: np.ndarray) -> float:
    return float((_predicted(model, features) == labels).mean()) if len(labels) else float("nan")


def _split_policies(names: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
    if names is None:
        return None, None
    specs = [get_policy(n) for n in names]
    return [s.name for s in specs if s.kind == "data"], [s.name for s in specs if s.kind == "training"]


def repair_loop(
    data: IndexedDataset, *, diagnose: DiagnoseFn, config: RunConfig | None = None, test: IndexedDataset | None = None,
    out: str | Path | None = None, overwrite: bool = False, max_rounds: int = MAX_ROUNDS,
    policies: Sequence[str] | None = None, frame: pd.DataFrame | None = None, target: str | None = None,
    output_format: str = "csv", console: Console | None = None, extra_callbacks: Sequence[Any] = (),
    repair_loss: RoundLoss = "gce", fixed: FixedLabels | None = None,
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
        fixed: a reviewer's decisions (``repair.fixed``): applied before round 0, never changed
            by a policy.

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
    # Refused before the folder exists: a repair that cannot start leaves nothing behind.
    validate_for_diagnosis(data, fit_config)
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
    say = console.print if console is not None else (lambda *a, **k: None)
    trainer = DataRounds(data, frozen, diagnose=diagnose, config=config, test=test, folder=folder,
                         data_policies=data_names, training_policies=training_names, repair_loss=repair_loss,
                         extra_callbacks=extra_callbacks, say=say, fixed=fixed)
    say(f"[bold]round 0[/]: diagnosing {len(data)} samples ({int(frozen.sum())} held out for validation)")
    rounds = run_rounds(trainer, max_rounds=max_rounds, log=log, say=lambda m: say(m, highlight=False))
    best, stopped = rounds.best, rounds.stopped
    metrics = [o.metrics for o in rounds.outcomes]
    best_state, best_model = rounds.outcomes[best].payload
    changes = pd.DataFrame([{k: v for k, v in row.items() if k != "round"} for row in trainer.change_log
                            if row["round"] <= best],
                           columns=["index", "action", "old_label", "new_label", "score", "reason"])
    pick = ("val_accuracy", "test_accuracy")
    result = RepairResult(
        rounds=metrics, best_round=best, before={k: metrics[0][k] for k in pick},
        after={k: metrics[best][k] for k in pick},
        stopped=stopped, state=best_state, changes=changes, actions=rounds.actions, model=best_model,
        data=_repaired_data(data, best_state), out=None if folder is None else folder.path,
        reference=None if rounds.reference is None else rounds.reference.metrics,
    )
    if folder is not None:
        write_repair_folder(folder.path, result, data, frame=frame, target=target, output_format=output_format)
    result.seconds = time.perf_counter() - started
    say(f"kept round {best}: {stopped}")
    return result


class DataRounds:
    """The data repair as a :class:`~trainground.repair.rounds.Trainer`: a round is a dataset
    diagnosis of the repaired data; planning runs the data and training policies on it, caps
    the class losses and applies the actions to the repair state and the training plan.

    ``frozen`` marks the validation rows that judge every round (see the module docstring).
    """

    def __init__(self, data: IndexedDataset, frozen: np.ndarray, *, diagnose: DiagnoseFn, config: RunConfig,
                 test: IndexedDataset | None, folder: RunDir | None, data_policies: list[str] | None,
                 training_policies: list[str] | None, repair_loss: RoundLoss, extra_callbacks: Sequence[Any],
                 say: Callable[..., None], fixed: FixedLabels | None = None) -> None:
        self.data, self.frozen, self.diagnose, self.test, self.folder = data, frozen, diagnose, test, folder
        self.data_policies, self.training_policies = data_policies, training_policies
        self.repair_loss, self.extra_callbacks, self.say = repair_loss, extra_callbacks, say
        self.val_features, self.val_labels = data.features[frozen], data.labels.numpy()[frozen]
        self.classes = data.encoder.classes
        self.state, self.plan_ = RepairState.initial(data), TrainingPlan(config)
        self.given = given_mass(self.state, ~frozen, data.num_classes)  # the cap counts the training rows only
        self.change_log: list[dict[str, Any]] = []
        self.counts: dict[str, dict[str, float]] | None = None
        self.history: list[dict[str, Any]] = []  # every trained round's metrics, for the policies
        self.fixed = fixed
        if fixed is not None:  # a reviewer's decisions hold from round 0 on, in every round kept
            before = self.state
            self.state, applied = apply_data_actions(before, fixed_actions(fixed, data.encoder, data.index.numpy()))
            self.change_log += change_rows(0, before, applied, data.encoder)
        self.initial = (self.state, self.plan_)  # what the reference round trains with

    def train(self, k: int) -> RoundOutcome:
        return self._train(k, self.state, self.plan_)

    def reference(self) -> RoundOutcome:
        """The reference round (``repair.rounds``): no edit (the data as given, a reviewer's
        decisions applied), trained exactly as a repair round is: the frozen rows left out, its
        own validation split, the same seed. The comparator of the keep rule in place of round 0;
        never an output. One extra training, no run folder."""
        self.say("[bold]reference round[/]: the data without edits, trained as the repair rounds are (one extra "
                 "training: the keep rule compares each repair round with it, not with round 0)")
        state, plan = self.initial
        return self._train(None, state, plan)

    def _train(self, k: int | None, state: RepairState, plan: TrainingPlan) -> RoundOutcome:
        data = self.data
        # Round 0 validates on the frozen split (its rows are diagnosed too); the repair rounds
        # (and the reference round, k None) leave it out and validate (early stopping, the
        # early-learning window) on a split of their own repaired rows, whose labels then agree
        # in kind with the training labels.
        view, view_val = training_view(data, state, self.frozen, with_frozen=k == 0)
        if view_val is None:
            _, view_val = stratified_split(view.labels.numpy(), fraction=plan.config.fit.val_fraction,
                                           seed=plan.config.fit.seed)
        train_rows = np.setdiff1d(np.arange(len(view)), view_val)
        seed_everything(plan.config.fit.seed)
        model = build_model(plan.config.model, input_shape=data.input_shape, num_classes=data.num_classes,
                            train_features=view.features[train_rows], kind=data.kind)
        model = prepare_model(plan, model)
        # The repair's own loss replaces the default cross-entropy only; a loss the user chose stays.
        loss = round_loss(state, data.num_classes, kind=self.repair_loss if plan.config.loss.name == "ce" else "ce")
        if loss is None and plan.config.loss.name != "ce":
            loss = build_loss(plan.config.loss, view.labels.numpy()[train_rows], num_classes=data.num_classes)
        run = None
        if self.folder is not None and k is not None:
            run = RunDir.create(self.folder.path / f"round_{k}")
            run.write_config(plan.config.to_dict())
        t0 = time.perf_counter()
        diagnosis = self.diagnose(
            view, fit_config=plan.config.fit, model=model, model_config=plan.config.model, run_dir=run,
            extra_callbacks=self.extra_callbacks, guard=plan.config.guard, val_positions=view_val, loss_fn=loss,
        )
        # Early stopping's pick (weights at the best validation loss), chosen on validation data only;
        # it is also the model saved for the round.
        model = getattr(diagnosis, "best_model", None) or diagnosis.fit.model
        if run is not None and run.model.exists():
            _save_measured(run.model, model, getattr(diagnosis, "early_learning_epoch", None))
        predicted = _predicted(model, self.val_features)
        test = self.test
        metrics = {
            "round": k,
            "val_accuracy": float((predicted == self.val_labels).mean()),
            "test_accuracy": None if test is None else _accuracy(model, test.features, test.labels.numpy()),
            "trainings": round(diagnosis.sample_presentations / (plan.config.fit.epochs * len(data)), 3),
            "actions": {}, "run_dir": f"round_{k}", "samples": len(train_rows),
            "seconds": round(time.perf_counter() - t0, 2), "comparison": None, "class_counts": self.counts,
            "skipped_policies": {}, "findings": [], "class_cap": {},
        }
        scores = (predicted == self.val_labels).astype(float)
        if k is None:
            metrics = {"role": "comparator of the keep rule in place of round 0: no edit, trained as the repair "
                               "rounds are (frozen rows left out, own validation split, same seed); never an output",
                       **{key: metrics[key] for key in ("val_accuracy", "test_accuracy", "trainings", "samples",
                                                        "seconds")}}
            self.say(_round_line({**metrics, "round": None}))
            return RoundOutcome(scores, metrics, None)
        self.last = (diagnosis, view, predicted)
        self.history.append(metrics)
        self.say(_round_line(metrics))
        return RoundOutcome(scores, metrics, (state, model))

    def plan(self, k: int, last: RoundOutcome) -> Planned:
        diagnosis, view, predicted = self.last
        data, plan, state = self.data, self.plan_, self.state
        noise = label_noise_estimate(view.labels.numpy(), diagnosis.pred_probs)  # reported, never decides
        competence = measure_competence(self.val_labels, predicted, data.num_classes, label_noise=noise)
        context = RepairContext(
            round=k - 1, data=view, findings=diagnosis.findings, table=diagnosis.table,
            pred_probs=diagnosis.pred_probs, history=list(self.history), config=plan.config, run_dir=diagnosis.run_dir,
            # The plan that trained the round: training policies skip edits it already holds.
            # Not resumable (this loop retrains each round from scratch): the rollback policy is skipped.
            extra={"frozen_index": data.index.numpy()[self.frozen], "plan": plan}, competence=competence,
        )
        data_actions, skipped = run_policies_reporting(context, self.data_policies, kind="data")
        data_actions = drop_fixed(data_actions, self.fixed)
        training_actions, skipped_training = run_policies_reporting(context, self.training_policies, kind="training")
        skipped.update(skipped_training)
        declined = competence.findings(self.classes) if "relabel" in (self.data_policies or ["relabel"]) else []
        for finding in declined:
            self.say(f"  [yellow]{finding.message}[/]", highlight=False)
        rows = ~self.frozen
        new_state, applied, protected = cap_class_loss(state, data_actions, rows, data.num_classes)
        for c, n in protected.items():
            self.say(f"  class {self.classes[c]!r}: {n} action(s) dropped so the class keeps at least 3/4 of its "
                     "rows", highlight=False)
        notes = _policy_notes(skipped, declined, protected, self.classes)
        actions = [*applied, *training_actions]
        if not actions:
            return Planned([], notes, f"round {k - 1}'s diagnosis left nothing to repair")
        self.change_log += change_rows(k, state, applied, data.encoder)
        self.counts = _class_counts(self.given, class_mass(state, rows, data.num_classes),
                                    class_mass(new_state, rows, data.num_classes), self.classes)
        self.state, self.plan_ = new_state, apply_training_actions(plan, training_actions)
        self.say(f"[bold]round {k}[/]: " + ", ".join(f"{n} {a}" for a, n in Counter(a.action for a in actions).items()))
        self.say("  training rows per class (weights counted), given -> before -> after: " + "; ".join(
            f"{label} {v['given']:g} -> {v['before']:g} -> {v['after']:g}" for label, v in self.counts.items()),
            highlight=False)
        # Relabels exist only where the competence gate allowed them; the cap bounded them.
        label_edits = competence.skilled and any(a.action == "relabel" for a in applied)
        return Planned(actions, notes, label_edits=label_edits)


def _repaired_data(data: IndexedDataset, state: RepairState) -> IndexedDataset:
    kept = np.flatnonzero(state.excluded == "")
    return data.with_labels(state.labels).subset(kept)


def _save_measured(path: Path, model: torch.nn.Module, epoch: int | None) -> None:
    """Replace the round's ``model.safetensors`` (the last epoch's weights, as ``fit`` wrote it)
    with the model the round's figures were measured on: early stopping's pick."""
    _, meta = read_model_file(path)
    info = {key: meta[key] for key in ("classes", "data_schema") if key in meta}
    which = "" if epoch is None else f" (epoch {epoch + 1})"
    info["weights"] = f"early-stopped: the epoch with the lowest validation loss{which}"
    save_model(path, model, info=info)


def _class_counts(given: np.ndarray, before: np.ndarray, after: np.ndarray, classes: Sequence[Any]
                  ) -> dict[str, dict[str, float]]:
    return {str(label): {"given": round(float(given[c]), 3), "before": round(float(before[c]), 3),
                         "after": round(float(after[c]), 3)} for c, label in enumerate(classes)}


def _policy_notes(skipped: dict[str, str], declined: list, protected: dict[int, int], classes: Sequence[Any]
                      ) -> dict[str, Any]:
    """What the policies did not do with a round's diagnosis: policies skipped (evidence this
    loop lacks), relabels declined (findings), actions dropped by the class-share cap."""
    return {"skipped_policies": skipped, "findings": [f.to_json() for f in declined],
            "class_cap": {str(classes[c]): n for c, n in protected.items()}}


def _round_line(metrics: dict[str, Any]) -> str:
    test = "" if metrics["test_accuracy"] is None else f", test accuracy {metrics['test_accuracy']:.4f}"
    name = "reference round" if metrics["round"] is None else f"round {metrics['round']}"
    return (f"  {name}: validation accuracy {metrics['val_accuracy']:.4f}{test} "
            f"({metrics['samples']} training samples, {metrics['seconds']:.1f} s)")
