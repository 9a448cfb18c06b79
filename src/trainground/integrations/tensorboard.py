"""``TensorBoardLogger``: ``metrics.jsonl``'s scalars as TensorBoard event files, live and resumable."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainground.engine.metrics import ScalarSink
from trainground.engine.state import TrainState
from trainground.integrations.extras import require
from trainground.integrations.records import (
    flatten,
    records_before,
    run_params,
    scalars,
)

# Declared to TensorBoard's HPARAMS tab so runs can be compared on them.
_HPARAM_METRICS = ("epoch/train_loss", "epoch/train_accuracy", "epoch/val_loss", "epoch/val_accuracy")


class TensorBoardLogger(ScalarSink):
    """Writes every per-step and per-epoch record of ``metrics.jsonl`` to TensorBoard, keyed by
    the global step, and the run's config as hyper-parameters (HPARAMS tab).

    Tags: ``step/loss``, ``step/lr``, ``step/grad_norm``, ``step/clip_threshold``,
    ``step/accum_k``, ``step/skipped``, ``step/update_scale``, ``epoch/train_loss``, ``epoch/val_accuracy``, ...
    It is fed by ``fit``'s metrics writer (one host sync per ``FitConfig.log_every`` steps for
    all sinks) and writes one event per record, as it arrives.

    Resume: the checkpoint holds the event file's size at that step. ``fit(..., resume=True)``
    cuts the file back to it (the steps after the checkpoint are redone) and opens a new file
    that starts with a purge marker at the first redone step, TensorBoard's own restart
    mechanism, so every step appears once even if the old file could not be cut. A logger
    that joins a run on resume first replays the run's ``metrics.jsonl`` up to the checkpoint.

    Args:
        log_dir: the TensorBoard log directory (``tensorboard --logdir`` it or a parent).
        params: hyper-parameters to record; None: the run's ``config.yaml`` (or the loop's
            and the Guard's options for a run without a directory), flattened.
        flush_secs: how often the event file is flushed to disk while training.
    """

    def __init__(self, log_dir: str | Path, *, params: Mapping[str, Any] | None = None, flush_secs: int = 30) -> None:
        options = {"package": "tensorboard", "extra": "tensorboard", "what": "TensorBoard logging"}
        self._tb = require("torch.utils.tensorboard", **options)
        self._summary = require("tensorboard.compat.proto.summary_pb2", **options)
        self.log_dir = Path(log_dir)
        self.params = None if params is None else flatten(params)
        self.flush_secs = flush_secs
        self._writer: Any = None
        self._suffix = ""
        self._checkpoint: dict[str, Any] = {}

    def on_fit_start(self, state: TrainState) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # A tag of our own in the file name, to find the file this writer appends to.
        self._suffix = f".trainground-{uuid.uuid4().hex[:12]}"
        self._writer = self._tb.SummaryWriter(
            str(self.log_dir), purge_step=state.step + 1 if state.step > 0 else None,
            flush_secs=self.flush_secs, filename_suffix=self._suffix,
        )
        if state.step == 0:
            self._write_hparams(self.params if self.params is not None else run_params(state))
        elif "file" not in self._checkpoint:  # joined on resume: replay the steps already done
            self._write_hparams(self.params if self.params is not None else run_params(state))
            self.write_records(records_before(state))

    def write_records(self, records: list[dict[str, Any]]) -> None:
        if self._writer is None:
            raise RuntimeError("TensorBoardLogger got records before on_fit_start; pass it to fit(callbacks=...)")
        Summary = self._summary.Summary
        writer = self._writer._get_file_writer()
        now = time.time()
        for record in records:
            # One event per record with all its values: 1/6 of the protobuf work of add_scalar per tag.
            values = [Summary.Value(tag=tag, simple_value=value) for tag, value in scalars(record)]
            if values:
                writer.add_summary(Summary(value=values), global_step=record["step"], walltime=now)

    def on_checkpoint(self, state: TrainState) -> None:
        # The metrics writer has already handed over every record up to state.step.
        self._writer.flush()
        path = self._file()
        self._checkpoint = {"file": path.name, "bytes": path.stat().st_size}

    def on_fit_end(self, state: TrainState) -> None:
        self._close()
        self._checkpoint = {}  # a later fit with this object starts from its own checkpoint, or fresh

    def state_dict(self) -> dict[str, Any]:
        return dict(self._checkpoint)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Events written after the checkpoint describe steps the resumed run redoes.
        self._close()  # this object wrote them (resumed in the same process): let it finish first
        self._checkpoint = dict(state)
        if "file" not in state:
            return
        path = self.log_dir / state["file"]
        if path.is_file() and path.stat().st_size > int(state["bytes"]):
            with open(path, "r+b") as fh:
                fh.truncate(int(state["bytes"]))

    def destination(self) -> str:
        """One line saying where the scalars went, for the end of a command."""
        return f"TensorBoard: tensorboard --logdir {self.log_dir}"

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _file(self) -> Path:
        found = sorted(self.log_dir.glob(f"events.out.tfevents.*{self._suffix}"))
        if len(found) != 1:
            raise RuntimeError(f"{self.log_dir}: expected one event file ending in {self._suffix}, found {len(found)}")
        return found[0]

    def _write_hparams(self, params: Mapping[str, Any]) -> None:
        if not params:
            return
        experiment, start, end = self._tb.summary.hparams(dict(params), dict.fromkeys(_HPARAM_METRICS, 0.0))
        writer = self._writer._get_file_writer()
        for summary in (experiment, start, end):
            writer.add_summary(summary)
