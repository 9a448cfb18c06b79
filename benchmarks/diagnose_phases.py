"""Where ``trainground diagnose`` spends its time and memory: a phase timer around the CLI.

Wraps the diagnosis's phases (loading, each training, the embedding passes, every
neighbour search, every check, the report) and prints one ``PHASE {json}`` line per
finished call to stderr: seconds, the process's CPU seconds (``cpu_s``, user + system: on a
loaded machine the figure that moves least with the load), the process's RSS and peak RSS (``/proc/self/status``)
when it ended, and for searches the size, dimension, k and metric. Then runs the CLI with
the arguments given (Linux only: it reads /proc).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diagnose_phases.py diagnose data.parquet \\
        --target label --out /tmp/run 2> phases.log
    grep PHASE phases.log

``TRUSTED_OUT=file.npy`` also saves the trust decision before the second pass (``True`` =
trusted): its complement is exactly what ``--no-second-pass`` flags, so one run gives the F1
of both (benchmarks/README.md, "Where the time goes").
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time

import numpy as np

STARTED = time.perf_counter()
PHASES = [
    ("trainground.data", "load_data"), ("trainground.engine.loop", "fit"),
    ("trainground.diagnosis.label_probs", "embed"), ("trainground.diagnosis.neighbors", "nearest_neighbors"),
    ("trainground.diagnosis.registry", "run_check"), ("trainground.diagnosis.label_probs", "trusted_samples"),
    ("trainground.diagnosis.second_pass", "second_pass"), ("trainground.monitors.samples", "SampleRecorder.compute"),
    ("trainground.cli.app", "report_summary"), ("trainground.diagnosis.dataset", "conclude_samples"),
    ("trainground.diagnosis.dataset", "diagnose_dataset"), ("trainground.engine.evaluate", "predict_logits"),
    ("trainground.diagnosis.sample_issues", "sample_issues_table"), ("trainground.diagnosis.dataset", "steps_frame"),
]


def memory() -> dict[str, int]:
    """Current and peak RSS in MB."""
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status
                if line.startswith(("VmRSS", "VmHWM"))}


def report(record: dict) -> None:
    print("PHASE", json.dumps({**record, "end": round(time.perf_counter() - STARTED, 1),
                               "cpu_end": round(time.process_time(), 1), **memory()}),
          file=sys.stderr, flush=True)


def wrap(module_name: str, attr: str):
    module = importlib.import_module(module_name)
    owner, name = (getattr(module, attr.split(".")[0]), attr.split(".")[1]) if "." in attr else (module, attr)
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        extra = ""
        if name == "run_check":
            extra = str(getattr(args[0], "name", args[0]))
        elif name == "nearest_neighbors":
            extra = (f"n={len(args[0])} d={args[0].shape[1]} k={args[1]} {kwargs.get('metric', 'euclidean')} "
                     f"exact={kwargs.get('exact', False)}")
        elif name == "trusted_samples" and os.environ.get("TRUSTED_OUT"):
            np.save(os.environ["TRUSTED_OUT"], np.asarray(result))
        report({"phase": f"{module_name.split('.')[-1]}.{attr}", "extra": extra,
                "s": round(time.perf_counter() - started, 2), "cpu_s": round(time.process_time() - cpu, 2)})
        return result

    setattr(owner, name, timed)
    if "." not in attr:  # names bound by ``from ... import`` elsewhere
        for other in list(sys.modules.values()):
            if getattr(other, "__name__", "").startswith("trainground") and getattr(other, attr, None) is fn:
                setattr(other, attr, timed)


def main() -> None:
    report({"phase": "start"})
    importlib.import_module("trainground.cli.fit")
    importlib.import_module("trainground.recipes.diagnose")
    report({"phase": "imports"})
    for module_name, attr in PHASES:
        wrap(module_name, attr)
    from trainground.cli.app import main as cli

    sys.argv = ["trainground", *sys.argv[1:]]
    try:
        cli()
    finally:
        report({"phase": "end"})


if __name__ == "__main__":
    main()
