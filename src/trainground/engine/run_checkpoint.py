"""What every training loop does with its run folder: claim it, resume from it, checkpoint into it.

``fit`` and ``fit_two_player`` keep different things in a checkpoint (one model or two
players), but the rules around it are the same and live here once:

* a run folder that already holds a run is never appended to unless the caller resumes;
* a resume checks the options that change the trajectory and the data's fingerprint, and
  fails with one line naming the difference;
* checkpoints are written every ``every_steps`` batches (mid-epoch, when asked) and at an
  epoch end when ``every_seconds`` passed since the last one or the run ends, so tiny epochs
  do not pay for a checkpoint each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainground.engine.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint
from trainground.engine.rundir import RunDir
from trainground.errors import ConfigError, RunDirError


def open_run(run_dir: RunDir | str | Path | None, *, resume: bool, appended: Sequence[str]) -> RunDir | None:
    """The run folder of a new (or resumed) run; ``appended`` are the files written by appending,
    listed in the manifest before the first write. None stays None (an in-memory run)."""
    if run_dir is None:
        return None
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not resume and (run.metrics.exists() or list_checkpoints(run.checkpoints)):
        # Appending a second run to the first one's metrics and checkpoints would corrupt both.
        raise RunDirError(f"{run.path}: already holds a training run; pass resume=True to continue it, "
                          "or choose another run_dir")
    run.path.mkdir(parents=True, exist_ok=True)
    run.record(*appended)
    return run


def resume_checkpoint(run: RunDir | None, *, config: Mapping[str, Any], must_match: Sequence[str],
                      fingerprint: str) -> dict[str, Any]:
    """The newest checkpoint of ``run``, after checking that it continues this very run.

    Args:
        config: the options of the run now (as saved in checkpoints, e.g. ``asdict(config)``).
        must_match: the options that change the trajectory; each must equal the saved one.
        fingerprint: the training data's fingerprint; it must equal the saved one.
    """
    if run is None:
        raise ConfigError("resume=True needs a run_dir")
    ckpt = load_latest_checkpoint(run.checkpoints)
    if ckpt is None:
        raise RunDirError(f"{run.checkpoints}: no checkpoint to resume from")
    saved = ckpt["config"]
    for key in must_match:
        if saved.get(key) != config[key]:
            raise RunDirError(f"{run.path}: cannot resume: the run was started with {key}={saved.get(key)!r}, "
                              f"now {key}={config[key]!r}")
    if ckpt["data_fingerprint"] != fingerprint:
        raise RunDirError(f"{run.path}: cannot resume: the training data differ from the data the run started on")
    return ckpt


class Checkpointer:
    """Writes a loop's checkpoints on schedule; a no-op for an in-memory run.

    Args:
        run: the run folder, or None.
        payload: builds what the checkpoint holds (called only when one is written).
        before_save: called first (the loop fires ``Event.CHECKPOINT`` there, so callbacks can
            flush what the checkpoint's ``callbacks`` state must agree with).
        every_steps: also checkpoint mid-epoch every this many batches (0: only at epoch ends).
        every_seconds: at an epoch end, checkpoint when this many seconds passed since the last one.
        keep: the newest checkpoints kept.
    """

    def __init__(self, run: RunDir | None, *, payload: Callable[[], dict[str, Any]], before_save: Callable[[], None],
                 every_steps: int, every_seconds: float, keep: int) -> None:
        self.run, self.payload, self.before_save = run, payload, before_save
        self.every_steps, self.every_seconds, self.keep = every_steps, every_seconds, keep
        self._last = time.monotonic()

    def after_batch(self, step: int, *, last_of_epoch: bool) -> None:
        """The mid-epoch checkpoint; the epoch end's follows anyway for the last batch."""
        if self.every_steps and step % self.every_steps == 0 and not last_of_epoch:
            self.save(step)

    def after_epoch(self, step: int, *, final: bool) -> None:
        if final or time.monotonic() - self._last >= self.every_seconds:
            self.save(step)

    def save(self, step: int) -> None:
        if self.run is None:
            return
        self._last = time.monotonic()
        self.before_save()
        save_checkpoint(self.run.checkpoints, step, self.payload(), keep=self.keep)
