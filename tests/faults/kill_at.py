"""Run the trainground CLI and ``kill -9`` itself at the N-th file commit (``os.replace``).

Usage: python kill_at.py N before|after ARGS...   (ARGS as for ``trainground``)
       python kill_at.py trace - ARGS...          (print every committed path, one a line, to stderr)

Every durable write of trainground ends in an ``os.replace`` (atomic writes, checkpoints
and their digests, the run manifest, Parquet parts), so the N-th one is a reproducible
point inside a checkpoint write, an output write or between the two halves of a
checkpoint. ``before`` dies with the temporary file written and not yet renamed; ``after``
dies right after the rename.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    target, phase, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    real_replace = os.replace
    count = 0

    def replace(src, dst, *a, **k):
        nonlocal count
        count += 1
        if target == "trace":
            print(f"replace {count} {dst}", file=sys.stderr, flush=True)
        elif count == int(target) and phase == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real_replace(src, dst, *a, **k)
        if target != "trace" and count == int(target) and phase == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = replace
    import torch

    torch.set_num_threads(1)
    from trainground.cli import app

    sys.argv = ["trainground", *args]
    app()


if __name__ == "__main__":
    main()
