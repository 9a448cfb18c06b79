"""Per-sample learning curves: every sample's loss, margin, given-label probability and
prediction at every epoch, gathered on the device and written to Parquet in chunks.

The per-step work is a handful of vectorised tensor ops and one slice assignment into
preallocated device buffers; the host sees the numbers only when a chunk is full, at a
checkpoint, or when asked (:meth:`SampleRecorder.compute`). On disk ``samples.parquet``
is a folder of Parquet parts (``part-000000.parquet``, ...), one per flush, which
``pandas.read_parquet`` reads as one table; a resumed run deletes the parts written after
its checkpoint, so the records match an uninterrupted run exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor

from trainground.monitors.base import Monitor

# Split codes stored in the ``split`` column (an int8 is cheaper than a string per row).
SPLITS = {"train": 0, "val": 1}
COLUMNS = ("index", "epoch", "split", "loss", "margin", "prob_given", "predicted")


def sample_statistics(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Loss, margin, probability of the given label and predicted label of each sample.

    Args:
        logits: ``[B, K]`` class scores.
        labels: ``[B]`` given class ids.

    Returns:
        ``loss`` (cross-entropy), ``margin`` (logit of the given label minus the largest
        other logit; negative when another class wins), ``prob_given`` (softmax of the
        given label) and ``predicted`` (argmax), each ``[B]``.

    References:
        Pleiss et al., "Identifying Mislabeled Data using the Area Under the Margin
        Ranking", NeurIPS 2020 (the margin).
    """
    logits = logits.detach().float()
    log_probs = torch.log_softmax(logits, dim=1)
    given_log_prob = log_probs.gather(1, labels.view(-1, 1)).squeeze(1)
    given_logit = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
    margin = given_logit - others.max(dim=1).values
    return -given_log_prob, margin, given_log_prob.exp(), logits.argmax(dim=1)


class SampleRecorder(Monitor):
    """Records per-sample statistics of every batch it is shown.

    Use it from any loop: ``recorder.set_epoch(e)`` at the start of an epoch, then
    ``recorder.update(indices, logits, labels)`` after every forward pass, and
    ``recorder.close()`` (or ``compute()``) at the end. With ``track_probs`` it also keeps,
    for every sample, the running sum of its softmax vectors, from which the diagnosis
    takes the average prediction a sample received before the model memorised it.

    Per step, ``update`` only copies the batch's indices, labels and logits into
    preallocated device buffers (three slice copies, no host sync); the statistics are
    computed for a whole chunk at once when it is full, at :meth:`sync`/:meth:`flush`, or
    when read, which is what keeps the recorder's cost per step small.

    Args:
        index: every input index the recorder may be shown (e.g. the dataset's ``index``).
        num_classes: number of classes (width of the logits).
        path: folder to write (``run_dir/samples.parquet``); None keeps records in memory.
        chunk_rows: rows buffered on the device before they are processed; by default as
            many as fit in about 16 MB of logits (at most 65536).
        track_probs: keep the per-sample sums of softmax vectors (``[N, K]`` on the device).
        keep_records: keep the per-sample rows; False keeps only the probability sums (the
            diagnosis's second pass reads nothing else: at 200,000 samples x 20 epochs its
            rows were about 5 million, 150 MB, never read).
        device: where the buffers live; the device of the first ``update`` when None.
    """

    def __init__(
        self, index: Tensor | np.ndarray, num_classes: int, *, path: str | Path | None = None,
        chunk_rows: int | None = None, track_probs: bool = True, device: torch.device | str | None = None,
        keep_records: bool = True,
    ) -> None:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        if index.numel() == 0 or int(index.min()) < 0:
            raise ValueError("index must be a non-empty set of non-negative input indices")
        self.index = index
        self.num_classes = int(num_classes)
        self.path = None if path is None else Path(path)
        self.chunk_rows = int(chunk_rows or max(256, min(1 << 16, (1 << 22) // max(self.num_classes, 1))))
        self.track_probs = track_probs
        self.keep_records = keep_records
        self.epoch = 0
        self.parts_written = 0
        self._device = None if device is None else torch.device(device)
        self._pending: list[pd.DataFrame] = []  # processed rows not yet written
        self._memory: list[pd.DataFrame] = []  # written chunks when there is no path
        self._buffers: dict[str, Tensor] | None = None
        self._fill = 0
        # Buffered rows whose probabilities are already in ``prob_sum`` (see :meth:`add_probs`).
        self._counted = 0
        # A requested copy of the sums (:meth:`request_snapshot`): the buffered rows it covers,
        # then the copy once those rows are counted.
        self._mark: int | None = None
        self.snapshot: tuple[Tensor, Tensor] | None = None
        # (start, stop, epoch, split code) of the buffered rows: kept on the host, so the
        # epoch and split columns cost no device op per step.
        self._segments: list[list[int]] = []
        self.prob_sum: Tensor | None = None
        self.prob_count: Tensor | None = None
        if self._device is not None:
            self._allocate(self._device)

    # ------------------------------------------------------------------ device side
    def _allocate(self, device: torch.device) -> None:
        self._device = device
        n, rows = len(self.index), self.chunk_rows
        # Input index -> row of the probability sums; one gather per chunk, no dict lookups.
        self._lookup = torch.full((int(self.index.max()) + 1,), -1, dtype=torch.long, device=device)
        self._lookup[self.index.to(device)] = torch.arange(n, device=device)
        self._buffers = {
            "index": torch.empty(rows, dtype=torch.long, device=device),
            "label": torch.empty(rows, dtype=torch.long, device=device),
            "logits": torch.empty(rows, self.num_classes, dtype=torch.float32, device=device),
        }
        if self.track_probs and self.prob_sum is None:
            self.prob_sum = torch.zeros(n, self.num_classes, dtype=torch.float32, device=device)
            self.prob_count = torch.zeros(n, dtype=torch.float32, device=device)

    def set_epoch(self, epoch: int) -> None:
        """The epoch number stored with the following updates."""
        self.epoch = int(epoch)

    @torch.no_grad()
    def update(self, indices: Tensor, logits: Tensor, labels: Tensor, *, split: str = "train") -> None:
        """Record one batch: input indices ``[B]``, logits ``[B, K]``, given labels ``[B]``."""
        if self._buffers is None:
            self._allocate(logits.device)
        assert self._buffers is not None
        code = SPLITS[split]
        start, b = 0, len(indices)
        while start < b:  # a batch larger than the free room spans two chunks
            if self._fill == self.chunk_rows:
                self.sync()
            take = min(b - start, self.chunk_rows - self._fill)
            dst = slice(self._fill, self._fill + take)
            src = slice(start, start + take)
            self._buffers["index"][dst] = indices[src]
            self._buffers["label"][dst] = labels[src]
            self._buffers["logits"][dst] = logits[src].detach()
            last = self._segments[-1] if self._segments else None
            if last is not None and last[1] == self._fill and last[2] == self.epoch and last[3] == code:
                last[1] += take
            else:
                self._segments.append([self._fill, self._fill + take, self.epoch, code])
            self._fill += take
            start += take

    def request_snapshot(self) -> None:
        """Ask for a copy of the probability sums as they stand after every row recorded so far.

        The copy is taken when those rows' probabilities are added (:meth:`add_probs`, at the
        latest when the chunk is synced), not now: an epoch end that may be the early-learning
        window's last one costs nothing here. A new request replaces an older one not yet taken.
        """
        self.snapshot = None
        self._mark = self._fill

    @torch.no_grad()
    def add_probs(self) -> None:
        """Add the probabilities of the buffered rows not yet counted to the per-sample sums
        (taking a requested :attr:`snapshot` on the way).

        The rows stay buffered: their statistics and their host copy wait for :meth:`sync`
        (a full chunk, a flush, a read), so an epoch end needs no table.
        """
        if self.prob_sum is None or self.prob_count is None or self._buffers is None:
            return
        if self._mark is not None:
            self._count_probs(self._mark)
            self.snapshot = (self.prob_sum.clone(), self.prob_count.clone())
            self._mark = None
        self._count_probs(self._fill)

    def _count_probs(self, upto: int) -> None:
        assert self.prob_sum is not None and self.prob_count is not None and self._buffers is not None
        lo, hi = self._counted, upto
        if lo >= hi:
            return
        rows = self._lookup[self._buffers["index"][lo:hi]]
        self.prob_sum.index_add_(0, rows, torch.softmax(self._buffers["logits"][lo:hi], dim=1))
        self.prob_count.index_add_(0, rows, torch.ones(hi - lo, dtype=self.prob_count.dtype, device=rows.device))
        self._counted = hi

    @torch.no_grad()
    def sync(self) -> None:
        """Compute the statistics of the buffered rows (one pass over the chunk), add their
        probabilities to the per-sample sums and move the rows to the host."""
        if not self._fill or self._buffers is None:
            return
        self.add_probs()
        n = self._fill
        index, labels, logits = (self._buffers[k][:n] for k in ("index", "label", "logits"))
        if not self.keep_records:  # only the probability sums are kept (added above)
            self._fill = self._counted = 0
            self._segments = []
            return
        loss, margin, prob, pred = sample_statistics(logits, labels)
        epoch = np.empty(n, dtype=np.int32)
        split = np.empty(n, dtype=np.int8)
        for lo, hi, e, code in self._segments:
            epoch[lo:hi], split[lo:hi] = e, code
        host = torch.stack([loss, margin, prob]).cpu().numpy()
        self._pending.append(pd.DataFrame({
            "index": index.cpu().numpy(), "epoch": epoch, "split": split, "loss": host[0], "margin": host[1],
            "prob_given": host[2], "predicted": pred.to(torch.int32).cpu().numpy(),
        }))
        self._fill = self._counted = 0
        self._segments = []

    # -------------------------------------------------------------------- host side
    def flush(self) -> None:
        """Process what is buffered and write it as one Parquet part (or keep it in memory)."""
        self.sync()
        if not self._pending:
            return
        frame = pd.concat(self._pending, ignore_index=True) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        if self.path is None:
            self._memory.append(frame)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        part = self.path / f"part-{self.parts_written:06d}.parquet"
        tmp = part.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        tmp.replace(part)  # a crash leaves no half-written part
        self.parts_written += 1

    def compute(self) -> pd.DataFrame:
        """Every record so far (flushes first): columns ``index, epoch, split, loss, margin,
        prob_given, predicted``, one row per sample per time it was shown."""
        self.flush()
        if self.path is None:
            frames = self._memory
        else:
            frames = [read_samples(self.path)] if self.parts_written else []
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
        return pd.concat(frames, ignore_index=True)

    def append_rows(self, frame: pd.DataFrame) -> None:
        """Add rows recorded elsewhere (another process of a distributed run); written at the next flush."""
        self.sync()
        self._pending.append(frame[list(COLUMNS)])

    def close(self) -> None:
        """Write what is buffered."""
        self.flush()

    def mean_probs(self, prob_sum: Tensor | None = None, prob_count: Tensor | None = None) -> np.ndarray:
        """Average softmax vector of each sample in ``self.index`` order (uniform where unseen)."""
        if prob_sum is None:
            self.add_probs()
        prob_sum = self.prob_sum if prob_sum is None else prob_sum
        prob_count = self.prob_count if prob_count is None else prob_count
        if prob_sum is None or prob_count is None:
            raise ValueError("the recorder was created with track_probs=False")
        mean = prob_sum / prob_count.clamp_min(1).unsqueeze(1)
        mean[prob_count == 0] = 1.0 / self.num_classes
        return mean.cpu().numpy().astype(np.float64)

    def reset(self) -> None:
        self._fill = self._counted = 0
        self._mark, self.snapshot = None, None
        self._segments = []
        self._pending.clear()
        self._memory.clear()
        if self.prob_sum is not None and self.prob_count is not None:
            self.prob_sum.zero_()
            self.prob_count.zero_()

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Flushes first, so the state and the parts on disk describe the same moment."""
        self.flush()
        state: dict[str, Any] = {"epoch": self.epoch, "parts_written": self.parts_written}
        if self.prob_sum is not None and self.prob_count is not None:
            state["prob_sum"], state["prob_count"] = self.prob_sum.cpu(), self.prob_count.cpu()
        if self.path is None:
            state["memory"] = [f.copy() for f in self._memory]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.parts_written = int(state["parts_written"])
        self._fill = self._counted = 0
        self._mark, self.snapshot = None, None
        self._segments, self._pending = [], []
        if "prob_sum" in state:
            device = self._device or torch.device("cpu")
            if self._buffers is None:
                self._allocate(device)
            self.prob_sum = state["prob_sum"].to(device)
            self.prob_count = state["prob_count"].to(device)
        if self.path is None:
            self._memory = list(state.get("memory", []))
        elif self.path.is_dir():
            # Parts written after the checkpoint belong to steps the resumed run repeats.
            for part in self.path.glob("part-*.parquet"):
                if int(part.stem.split("-")[1]) >= self.parts_written:
                    part.unlink()


def read_samples(path: str | Path) -> pd.DataFrame:
    """Read ``samples.parquet`` (a folder of parts, or a single file) into one DataFrame."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
        return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    return pq.read_table(path).to_pandas()


def remove_samples(path: str | Path) -> None:
    """Delete a ``samples.parquet`` folder (a fresh run must not inherit old parts)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
