"""Plot the growth of time and memory with N from ``results/scale.json`` (``scale.py``'s output).

    python benchmarks/plot_scale.py benchmarks/results/scale.json benchmarks/results/scale_growth.png

Two log-log panels: seconds (read + check + CSV) and peak RSS (with the RSS before the
timed part, i.e. the generated evidence), against the number of samples, with the
linear-growth line through the smallest size for reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: Path, out: Path) -> None:
    rows = sorted(json.loads(src.read_text())["records"], key=lambda r: r["n"])
    n = [r["n"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    seconds = [r["seconds"] for r in rows]
    left.loglog(n, seconds, "o-", label="measured")
    left.loglog(n, [seconds[0] * x / n[0] for x in n], "--", color="grey", label="linear in N")
    left.set(xlabel="samples", ylabel="seconds", title="read + label check + CSV")
    peak = [r["peak_rss_mb"] for r in rows]
    before = [r["rss_before_mb"] for r in rows]
    right.loglog(n, peak, "o-", label="peak RSS")
    right.loglog(n, before, "s:", label="RSS before the timed part")
    right.set(xlabel="samples", ylabel="MB", title="memory")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("Label diagnosis from recorded dynamics, 100 classes x 10 epochs (scale.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
