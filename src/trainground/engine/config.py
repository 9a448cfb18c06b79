"""Options of the training loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from trainground.bounds import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE


@dataclass
class FitConfig:
    """How ``fit`` trains. Each field says why its default is what it is."""

    # Passes over the training split; 20 is enough for small tables to converge with Adam 1e-3.
    epochs: Annotated[int, AT_LEAST_ONE] = 20
    # Samples per optimizer step; 64 is the benchmark recipe (small data, noisy gradients help).
    batch_size: Annotated[int, AT_LEAST_ONE] = 64
    # Adam's usual default; SGD users should raise it (e.g. 0.05 with momentum 0.9).
    lr: Annotated[float, POSITIVE] = 1e-3
    # Choose lr (a learning-rate range test), shrink the batch to >= 20 steps per epoch and raise
    # epochs to at least 1000 optimizer steps from the data (engine/schedule.py): "images" for image
    # data only, "always", or "never" (lr, batch and epochs as given). The CLI turns "images" on when
    # neither lr nor epochs is set: small image folders underfit at a fixed 20 epochs of lr 1e-3.
    auto_schedule: Literal["never", "images", "always"] = "never"
    # Optimizer built when you don't pass one.
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    # SGD momentum (ignored by Adam/AdamW).
    momentum: Annotated[float, FRACTION] = 0.9
    # L2 penalty (Adam/SGD) or decoupled decay (AdamW).
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.0
    # Share of the training data held out for validation (stratified); 0 disables validation.
    val_fraction: Annotated[float, FRACTION] = 0.1
    # Seeds the model init (CLI), the split and the batch order: same seed, same run.
    seed: Annotated[int, NON_NEGATIVE] = 0
    # Checkpoint every N optimizer steps as well as at epoch ends (0: epoch ends only).
    checkpoint_every: Annotated[int, NON_NEGATIVE] = 0
    # An epoch-end checkpoint is written once at least this many seconds have passed since the
    # last one (always after the last epoch): a 25 ms epoch would otherwise spend more time
    # saving than training (1.76x on the digits MLP), while a kill loses at most this much work.
    # 0 checkpoints at every epoch end.
    checkpoint_seconds: Annotated[float, NON_NEGATIVE] = 30.0
    # Checkpoints kept on disk; the newest is always kept, older ones are deleted.
    keep_checkpoints: Annotated[int, AT_LEAST_ONE] = 2
    # Per-step scalars are gathered on the device and written every N steps: one host sync per flush.
    log_every: Annotated[int, AT_LEAST_ONE] = 50
    # "auto" takes CUDA when available; results are bit-reproducible on CPU at a fixed thread count.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Intra-op CPU threads (torch.set_num_threads); None keeps torch's default. Matmul sums
    # depend on it, so a run resumed with another thread count is close but not bit-identical.
    threads: Annotated[int, AT_LEAST_ONE] | None = None
