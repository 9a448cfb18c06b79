"""Why a benchmark-B repair keeps the round it keeps: one (data, noise, seed), instrumented.

Wraps, for this process only, the repair loop's competence measure, the relabel policy and the
class-share cap, and prints per planned round: the competence measured on the frozen validation
rows (labels as given) and *against their true labels* (known here, never to the repair), the
relabel candidates (flagged, suggested class with >= 1/2 of the early-learning probability) and
how many of them are right, the relabels left after the competence gate and after the cap, and
finally every round's validation / clean test accuracy with the keep rule's verdict. Diagnostic
only: nothing here changes a decision (the wrappers call the originals and return their results).

Usage: python benchmarks/repair_probe.py digits sym40 2      # data, noise, seed (~1 min for digits)
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter

import repair_accuracy as ra

from trainground.repair import loop, policy
from trainground.repair.policies import _evidence

log: list[dict] = []
frozen_rows: dict[str, object] = {}


def main(ds: str, noise: str, seed: int) -> None:
    common = ra.load_anchor("common", ra.ANCHORS)
    common.setup_torch(1)
    x, xte, y, yte = common.load_dataset(ds)
    kind, rate = common.NOISE_SETTINGS[noise]
    y_noisy, truth = common.inject_noise(y, kind, rate, seed)
    measure, init, cap = loop.measure_competence, loop.DataRounds.__init__, loop.cap_class_loss
    relabel = policy._REGISTRY["relabel"].fn

    def remember_frozen(self, data, frozen, **kw):
        frozen_rows.update(index=data.index.numpy()[frozen])
        return init(self, data, frozen, **kw)

    def competence(given, predicted, num_classes, **kw):
        comp = measure(given, predicted, num_classes, **kw)
        true = measure(y[frozen_rows["index"]], predicted, num_classes)
        log.append({"competence": {
            "skill": round(comp.skill, 4), "true_skill": round(true.skill, 4), "skilled": comp.skilled,
            "label_noise_estimate": kw.get("label_noise"),
            "precision": [round(float(p), 3) for p in comp.precision],
            "true_precision": [round(float(p), 3) for p in true.precision],
            "may_relabel_into": comp.may_relabel_into().astype(int).tolist()}})
        return comp

    def relabel_counted(context):
        actions = relabel(context)
        evidence = _evidence.label_evidence(context)
        if evidence is not None:
            strong = evidence.strong()
            log.append({"relabel": {"candidates": int(strong.sum()),
                                    "candidates_right": int((y[evidence.index[strong]] == evidence.suggested[strong]).sum()),
                                    "after_competence_gate": len(actions)}})
        return actions

    def capped(state, actions, rows, num_classes):
        new_state, applied, dropped = cap(state, actions, rows, num_classes)
        log.append({"class_share_cap": {"proposed": dict(Counter(a.action for a in actions)),
                                        "applied": dict(Counter(a.action for a in applied)),
                                        "dropped_per_class": {int(c): n for c, n in dropped.items()}}})
        return new_state, applied, dropped

    loop.measure_competence, loop.DataRounds.__init__, loop.cap_class_loss = competence, remember_frozen, capped
    policy._REGISTRY["relabel"] = dataclasses.replace(policy._REGISTRY["relabel"], fn=relabel_counted)
    result = ra.repair_run(x, y_noisy, y, truth, xte, yte, seed, 1)
    for entry in log:
        print(json.dumps(entry))
    for rnd in result["per_round"]:
        print(json.dumps({k: rnd[k] for k in ("round", "val_acc", "test_acc", "actions", "keep")}))
    print(f"kept round {result['best_round']}: {result['stopped']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
