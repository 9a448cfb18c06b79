"""``TrainingSession``: the diagnosis inside someone else's training loop.

``fit`` fires the engine's events itself; a user's own loop, Lightning and the
transformers ``Trainer`` do not, so a session fires them on their behalf (same
``TrainState``, same callbacks: the training monitors and checks of
``DiagnosisCallback``, the metrics writer, the early-learning window) and feeds the
per-sample recorder and the penultimate features. At :meth:`TrainingSession.finish` it
runs the same sample and dataset checks as ``trainground diagnose``
(``diagnosis.dataset.conclude_samples``) and writes ``sample_issues.csv``,
``findings.json`` and ``report.html``. The adapters (``own_loop``, ``lightning``,
``transformers``) only translate their framework's hooks into these calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from trainground.data import IndexedDataset, LabelEncoder
from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig, EarlyLearningWindow, Evidence, Finding
from trainground.diagnosis.dataset import PATIENCE, SampleIssues, conclude_samples
from trainground.diagnosis.findings import write_findings
from trainground.engine import Callback, CallbackList, Event, FitConfig, MetricsWriter, RunDir, TrainState
from trainground.engine.atomic import atomic_write_text
from trainground.errors import ConfigError
from trainground.gradients.distributed import is_distributed
from trainground.integrations.gather import all_reduce, gather_tables, max_width, merge_latest_rows, rank
from trainground.integrations.second_pass import SecondPass, run_second_pass
from trainground.monitors import SampleRecorder
from trainground.monitors.penultimate import PenultimateFeatures


@dataclass
class SessionConfig:
    """What a session watches and writes."""

    # Epochs without a better validation loss before the session asks to stop (the
    # diagnosis reads only the epochs before memorisation); None never asks.
    patience: int | None = PATIENCE
    # The training diagnosis (gradient/activation/representation monitors and checks);
    # None: samples and dataset checks only.
    training_checks: DiagnosisConfig | None = field(default_factory=DiagnosisConfig)
    # Capture penultimate features (input of ``model.head`` or the last nn.Linear) for the
    # neighbour-based checks; without them label issues use the early-learning average alone.
    features: bool = True
    # Per-step scalars are written to metrics.jsonl every N steps (one host sync per flush).
    log_every: int = 50
    # The batches' indices, logits, labels and features stay as the loop made them (detached
    # references on their device, no copy) and go into the per-sample tables every N rows
    # and at each epoch end: one batched copy instead of several small ones per step. Memory:
    # N rows of logits and penultimate features.
    flush_rows: int = 4096
    # Render report.html at finish (needs the run directory).
    report: bool = True


@dataclass
class SessionResult:
    """What a watched training concluded."""

    table: pd.DataFrame
    findings: list[Finding]
    skipped_checks: list[str]
    early_learning_epoch: int | None
    run_dir: RunDir | None
    report: Path | None = None
    # Training samples x epochs of the second pass (0: not run, or every sample trusted).
    second_pass_presentations: int = 0


class TrainingSession:
    """Fires the engine's events for a loop trainground does not run.

    Args:
        model: the network being trained (the module whose forward gives the logits).
        num_samples: training + validation samples; sample indices run from 0 to N - 1.
        num_classes: width of the logits.
        optimizer: the optimizer (its learning rate is logged).
        run_dir: where to write the run; None keeps everything in memory.
        config: what to watch.
        guard: the ``Guard`` stepping the optimizer, when there is one.
        classes: the class names, in class-id order (default: the ids).
        feature_module: the layer whose input is the representation (default: found).
        callbacks: more engine callbacks to fire.
    """

    def __init__(
        self, model: nn.Module, *, num_samples: int, num_classes: int, optimizer: Any = None,
        run_dir: RunDir | str | Path | None = None, config: SessionConfig | None = None, guard: Any = None,
        classes: tuple[Any, ...] | None = None, feature_module: nn.Module | None = None,
        callbacks: tuple[Callback, ...] = (),
    ) -> None:
        self.config = config or SessionConfig()
        # Under DDP only rank 0 writes and concludes; the others send it their evidence at finish.
        self.rank = rank()
        self.run = None if run_dir is None or self.rank != 0 else (
            run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir))
        if self.run is not None:
            self.run.path.mkdir(parents=True, exist_ok=True)
        self.num_samples, self.num_classes = int(num_samples), int(num_classes)
        self.classes = tuple(range(self.num_classes)) if classes is None else tuple(classes)
        self.recorder = SampleRecorder(np.arange(self.num_samples), self.num_classes,
                                       path=None if self.run is None else self.run.samples)
        self.window = EarlyLearningWindow(self.recorder, patience=self.config.patience)
        self.diagnosis = None if self.config.training_checks is None or self.rank != 0 else DiagnosisCallback(
            dataclasses.replace(self.config.training_checks, write_findings=False))
        self.features = PenultimateFeatures(model, self.num_samples, module=feature_module) \
            if self.config.features else None
        watchers: list[Callback] = [self.window]
        if self.run is not None:
            watchers.insert(0, MetricsWriter(self.run.metrics, flush_every=self.config.log_every))
        if self.diagnosis is not None:
            watchers.append(self.diagnosis)
        self.hooks = CallbackList([*watchers, *callbacks])
        self.state = TrainState(model=model, optimizer=optimizer, config=FitConfig(log_every=self.config.log_every),
                                num_epochs=0, steps_per_epoch=0, run_dir=self.run, guard=guard)
        self.labels: Tensor | None = None
        self._totals: Tensor | None = None  # train loss sum, correct, samples; val loss sum, correct, samples
        self._batches: list[tuple[Any, ...]] = []  # recorded, not yet flushed (see SessionConfig.flush_rows)
        self._rows = 0
        self._started = self._epoch_open = self._batch_open = self._finished = False

    # ---- the loop's moments --------------------------------------------------------------
    def begin_batch(self) -> None:
        """Before the training forward pass (arms the sampled activation hooks)."""
        if not self._started:
            self._started = True
            self.hooks.fire(Event.FIT_START, self.state)
        if not self._epoch_open:
            self._epoch_open = True
            self.recorder.set_epoch(self.state.epoch)
            self.hooks.fire(Event.EPOCH_START, self.state)
        if not self._batch_open:
            self._batch_open = True
            self.hooks.fire(Event.BATCH_START, self.state)

    def after_forward(self, loss: Tensor, logits: Tensor | None = None) -> None:
        """The training forward pass is done (disarms the sampled activation hooks)."""
        self.begin_batch()
        self.state.logits, self.state.loss = logits, loss
        self.hooks.fire(Event.AFTER_FORWARD, self.state)

    def record_train(self, index: Tensor, logits: Tensor, labels: Tensor, loss: Tensor | None = None) -> None:
        """The training batch's sample indices, logits, given labels (and its mean loss)."""
        self.state.loss = loss if loss is not None else self.state.loss
        self._record(index, logits, labels, split="train", loss=loss)

    def after_backward(self) -> None:
        """Gradients are in ``param.grad`` (the gradient monitor reads them)."""
        self.hooks.fire(Event.AFTER_BACKWARD, self.state)

    def end_batch(self, *, window_closed: bool = True) -> None:
        """The optimizer stepped (or skipped, or only accumulated: ``window_closed=False``)."""
        self.state.window_closed = window_closed
        self.state.step += 1
        self.state.batch_in_epoch += 1
        self.hooks.fire(Event.BATCH_END, self.state)
        self._batch_open = False

    @torch.no_grad()
    def record_val(self, index: Tensor, logits: Tensor, labels: Tensor) -> None:
        """A validation batch (model in eval mode); its mean cross-entropy is the epoch's
        ``val_loss`` unless :meth:`end_epoch` is given one."""
        self._record(index, logits, labels, split="val")

    def end_epoch(self, *, val_loss: float | None = None, metrics: dict[str, float] | None = None) -> bool:
        """Close the epoch; True when the session asks training to stop (early stopping)."""
        self.flush()
        # Under DDP every rank sums every rank's batches: the same val_loss, the same window.
        # Every rank joins the all-reduce, also one that has recorded no batch yet (it adds zeros):
        # a collective skipped by one rank would pair with the next one of the other.
        own = self._totals if self._totals is not None else torch.zeros(6, dtype=torch.float64)
        totals = all_reduce(own).tolist()
        epoch_metrics: dict[str, float] = {}
        if totals[2]:
            epoch_metrics.update(train_loss=totals[0] / totals[2], train_accuracy=totals[1] / totals[2])
        if totals[5]:
            epoch_metrics.update(val_loss=totals[3] / totals[5], val_accuracy=totals[4] / totals[5])
        if val_loss is not None:
            epoch_metrics["val_loss"] = float(val_loss)
        epoch_metrics.update(metrics or {})
        self.state.epoch_metrics = epoch_metrics
        self.state.history.append(dict(epoch_metrics))
        if not self._epoch_open:  # an epoch without training batches still counts
            self.recorder.set_epoch(self.state.epoch)
        self.hooks.fire(Event.EPOCH_END, self.state)
        if self.features is not None and self.window.best_epoch == self.state.epoch:
            self.features.snapshot()  # the representation at the window's end
        self.state.epoch += 1
        self.state.batch_in_epoch = 0
        self._epoch_open = False
        if self._totals is not None:
            self._totals.zero_()
        return self.state.stop_requested

    def _record(self, index: Tensor, logits: Tensor, labels: Tensor, *, split: str, loss: Tensor | None = None) -> None:
        features = None if self.features is None else self.features.take()
        self._batches.append((split, index, logits.detach(), labels, None if loss is None else loss.detach(), features))
        self._rows += labels.shape[0]
        if self._rows >= self.config.flush_rows:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Move the batches recorded since the last flush into the per-sample tables (and the
        epoch's loss/accuracy totals). Runs by itself every ``flush_rows`` rows, at epoch ends,
        at checkpoints and at finish."""
        batches, self._batches, self._rows = self._batches, [], 0
        start = 0
        while start < len(batches):  # consecutive batches of one split go in together
            end = start
            while end < len(batches) and batches[end][0] == batches[start][0]:
                end += 1
            self._record_run(batches[start:end])
            start = end

    def _record_run(self, batches: list[tuple[Any, ...]]) -> None:
        split = batches[0][0]
        logits = torch.cat([b[2] for b in batches]) if len(batches) > 1 else batches[0][2]
        device = logits.device
        index = _cat_long([b[1] for b in batches], device)
        labels = _cat_long([b[3] for b in batches], device)
        if self.labels is None:
            self.labels = torch.full((self.num_samples,), -1, dtype=torch.long, device=device)
            self._totals = torch.zeros(6, dtype=torch.float64, device=device)
        if self.labels.device != device:  # restored from a checkpoint on the host
            self.labels = self.labels.to(device)
            self._totals = torch.zeros(6, dtype=torch.float64, device=device)
        assert self._totals is not None
        self.labels[index] = labels
        self.recorder.update(index, logits.float(), labels, split=split)
        if self.features is not None:
            # Batch by batch, in order (the features hold each batch's head input by reference:
            # no concatenated copy)
            self.features.epoch = self.state.epoch
            self.features.write_many([(_cat_long([b[1]], b[5].device), b[5]) for b in batches
                                      if b[5] is not None and b[5].shape[0] == b[3].shape[0]])
        sizes = torch.tensor([b[3].shape[0] for b in batches], dtype=torch.float64, device=device)
        if all(b[4] is not None for b in batches):  # the loop's own batch-mean losses
            losses = torch.stack([b[4] for b in batches]).reshape(len(batches)).to(device, torch.float64)
            loss_sum = (losses * sizes).sum()
        else:
            loss_sum = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").double()
        at = 0 if split == "train" else 3
        self._totals[at:at + 3] += torch.stack([loss_sum, (logits.argmax(1) == labels).sum().double(), sizes.sum()])

    # ---- the end --------------------------------------------------------------------------
    def finish(self, second_pass: SecondPass | None = None) -> SessionResult | None:
        """Fire FIT_END, run the sample and dataset checks, write the run directory's files.

        Under DDP every rank must call it (it gathers); rank 0 returns the result, the others None.

        Args:
            second_pass: retrain a fresh model on the samples this run trusts before concluding
                (``integrations.second_pass``; its ``inputs`` must be set). None: one pass.
        """
        if second_pass is not None and second_pass.inputs is None:
            raise ConfigError("TrainingSession.finish: SecondPass.inputs is needed (every sample's input)")
        if self._finished:
            raise RuntimeError("this session has already finished")
        self.flush()
        if self.labels is None or self.window.best_epoch is None:
            raise RuntimeError("no epoch was recorded: call end_epoch() after each epoch before finish()")
        self._finished = True
        self.hooks.fire(Event.FIT_END, self.state)
        if self.features is not None:
            self.features.remove()
        if is_distributed():
            self._gather()
            if self.rank != 0:
                return None
        records = self.recorder.compute()
        issues, presentations = self._conclude(records, second_pass)
        training = [] if self.diagnosis is None else list(self.diagnosis.findings)
        findings = [*issues.findings, *training]
        skipped = issues.skipped + ([] if self.diagnosis is None else list(self.diagnosis.skipped))
        report = None
        if self.run is not None:
            atomic_write_text(self.run.sample_issues, issues.table.to_csv(index=False))
            write_findings(self.run.findings, findings)
            if not self.run.config.exists():
                self.run.write_config({"source": "own training loop (trainground.integrations)",
                                       "num_samples": self.num_samples, "num_classes": self.num_classes})
            if self.config.report:
                from trainground.report import write_report

                report = write_report(self.run.path)
        return SessionResult(table=issues.table, findings=findings, skipped_checks=skipped,
                             early_learning_epoch=self.window.best_epoch, run_dir=self.run, report=report,
                             second_pass_presentations=presentations)

    def _gather(self) -> None:
        """Every rank's evidence onto rank 0 (collectives: every rank runs this, in this order)."""
        if self.labels is None:
            self.labels = torch.full((self.num_samples,), -1, dtype=torch.long)
        self.labels = all_reduce(self.labels, torch.distributed.ReduceOp.MAX)
        window = self.window
        assert window.prob_sum is not None and window.prob_count is not None
        window.prob_sum, window.prob_count = all_reduce(window.prob_sum), all_reduce(window.prob_count)
        if self.features is not None:
            table, stamp = self.features.chosen()
            width = max_width(0 if table is None else table.shape[1])
            if width:
                if table is None or stamp is None:
                    table = torch.zeros(self.num_samples, width)
                    stamp = torch.full((self.num_samples,), -1, dtype=torch.long)
                self.features.best = merge_latest_rows(table, stamp)
                self.features.best_stamp = all_reduce(stamp, torch.distributed.ReduceOp.MAX)
        frames = gather_tables(self.recorder.compute() if self.rank != 0 else pd.DataFrame())
        for frame in frames[1:]:
            self.recorder.append_rows(frame)

    def _conclude(self, records: pd.DataFrame, second: SecondPass | None) -> tuple[SampleIssues, int]:
        assert self.labels is not None
        labels = self.labels.cpu()
        seen = torch.nonzero(labels >= 0).flatten().numpy()
        pred_probs = self.window.mean_probs()[seen]
        table = None if self.features is None else self.features.features()
        embeddings = None if table is None else table[seen]
        presentations = 0
        if second is not None:
            assert second.inputs is not None
            pred_probs, embeddings, presentations = run_second_pass(
                second, second.inputs, seen, labels[seen].numpy(), self.num_classes, pred_probs, embeddings,
                patience=self.config.patience, weights=self.window.weights)
        data = IndexedDataset(
            features=torch.zeros(len(seen), 1) if embeddings is None else torch.from_numpy(embeddings),
            labels=labels[seen], index=torch.from_numpy(seen), encoder=LabelEncoder(self.classes),
            kind="image",  # the features are a learned representation: the checks treat them as such
            name="training",
        )
        last = records.sort_values("epoch", kind="stable").groupby("index")["predicted"].last()
        predicted = last.reindex(seen).fillna(-1).to_numpy(dtype=np.int64)
        predicted = np.where(predicted < 0, labels[seen].numpy(), predicted)
        evidence = Evidence(
            epochs=pd.DataFrame(self.state.history), samples=records, train=data, model=self.state.model,
            pred_probs=pred_probs, embeddings=embeddings, extra={"early_learning_epoch": self.window.best_epoch},
        )
        # Without a representation the feature-space checks would read zeros: they are skipped.
        exclude = [] if embeddings is not None else ["outliers", "near_duplicates", "underperforming_groups"]
        if self.diagnosis is not None:
            exclude += self.diagnosis.check_names
        return conclude_samples(evidence, predicted, exclude=exclude), presentations

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after a resume (flushes the recorder first)."""
        self.flush()
        if self.run is not None and self._started:
            self.hooks.fire(Event.CHECKPOINT, self.state)
        return {
            "hooks": self.hooks.state_dict(), "recorder": self.recorder.state_dict(),
            "features": None if self.features is None else self.features.state_dict(),
            "labels": None if self.labels is None else self.labels.cpu(),
            "step": self.state.step, "epoch": self.state.epoch, "history": self.state.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recorder.load_state_dict(state["recorder"])
        self.hooks.load_state_dict(state["hooks"])
        if self.features is not None and state.get("features") is not None:
            self.features.load_state_dict(state["features"])
        if state.get("labels") is not None:
            self.labels = state["labels"]
            self._totals = torch.zeros(6, dtype=torch.float64)
        self.state.step, self.state.epoch = int(state["step"]), int(state["epoch"])
        self.state.history = list(state["history"])


def _cat_long(parts: list[Tensor], device: torch.device) -> Tensor:
    """The batches' index (or label) tensors as one flat ``long`` tensor on ``device``."""
    flat = [t if t.ndim == 1 and t.device == device else t.reshape(-1).to(device) for t in parts]
    return (torch.cat(flat) if len(flat) > 1 else flat[0]).long()
