"""A reviewer's decisions as fixed labels of the repair (``repair --decisions``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trainground.data import LabelEncoder
from trainground.errors import DataError
from trainground.repair import Action
from trainground.repair.fixed import REASON, FixedLabels, drop_fixed, fixed_actions, read_decisions


def _write(path, rows, columns=("index", "action", "new_label", "applied")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_read_decisions_takes_applied_rows_and_names_bad_ones(tmp_path):
    path = _write(tmp_path / "d.csv", [(3, "accept", "b", True), (4, "exclude", "", True), (5, "keep", "a", True),
                                       (6, "relabel", "c", False)])
    fixed = read_decisions(path)
    assert fixed.labels == {3: "b", 5: "a"} and fixed.excluded == {4}  # row 6: a conflict, not applied
    with pytest.raises(DataError, match=r"d2.csv: row 3: unknown action 'delete'"):
        read_decisions(_write(tmp_path / "d2.csv", [(1, "keep", "a", True), (2, "delete", "", True)]))
    with pytest.raises(DataError, match="lacks the column"):
        read_decisions(_write(tmp_path / "d3.csv", [(1, "keep")], columns=("index", "action")))


def test_fixed_actions_and_policies_never_touch_a_reviewed_sample():
    fixed = FixedLabels(labels={1: "b", 2: "a"}, excluded=frozenset({3}))
    encoder = LabelEncoder(("a", "b", "c"))
    actions = fixed_actions(fixed, encoder, known=[0, 1, 2, 3, 4])
    assert [(a.action, a.target, a.value) for a in actions] == [("relabel", 1, 1), ("relabel", 2, 0),
                                                                ("quarantine", 3, None)]
    assert all(a.reason == REASON for a in actions)
    policy = [Action("relabel", "relabel", "r", target=1, value=2), Action("relabel", "relabel", "r", target=4, value=2),
              Action("quarantine", "q", "r", target=3), Action("class_weights", "w", "r", value=[1, 1, 1])]
    assert [(a.action, a.target) for a in drop_fixed(policy, fixed)] == [("relabel", 4), ("class_weights", None)]
    with pytest.raises(DataError, match="'z'"):
        fixed_actions(FixedLabels(labels={0: "z"}, excluded=frozenset()), encoder, known=[0])


def test_repair_keeps_the_reviewers_labels(tmp_path):
    from trainground.engine import FitConfig, RunConfig
    from trainground.recipes.repair import repair

    rng = np.random.default_rng(1)
    n = 300
    truth = rng.integers(0, 3, n)
    features = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[truth] + rng.normal(0, 0.6, (n, 2))
    noisy = truth.copy()
    flip = rng.random(n) < 0.2
    noisy[flip] = (noisy[flip] + 1) % 3
    names = np.array(["a", "b", "c"])
    frame = pd.DataFrame(features, columns=["f1", "f2"])
    frame["label"] = names[noisy]
    source = tmp_path / "data.csv"
    frame.to_csv(source, index=False)
    flipped = np.flatnonzero(flip)
    # the reviewer: sets two flipped samples to a deliberately odd label (no policy would choose it),
    # excludes one, keeps one flipped label as given
    odd = {int(i): str(names[(truth[i] + 2) % 3]) for i in flipped[:2]}
    decisions = _write(tmp_path / "decisions.csv", [
        *((i, "relabel", label, True) for i, label in odd.items()),
        (int(flipped[2]), "exclude", "", True), (int(flipped[3]), "keep", str(names[noisy[flipped[3]]]), True)])
    config = RunConfig(fit=FitConfig(epochs=6, seed=0, device="cpu", threads=1))
    result = repair(source, target="label", out=tmp_path / "out", config=config, max_rounds=1, repair_loss="ce",
                    decisions=decisions)
    state = result.state
    position = {int(i): p for p, i in enumerate(state.index)}
    for index, label in odd.items():
        assert names[state.labels[position[index]]] == label
    assert state.excluded[position[int(flipped[2])]] != ""
    assert state.labels[position[int(flipped[3])]] == noisy[flipped[3]]
    reviewed = {*odd, int(flipped[2]), int(flipped[3])}
    for line in (tmp_path / "out" / "actions.jsonl").read_text().splitlines():
        target = json.loads(line).get("evidence", {}).get("target")
        assert not (isinstance(target, int) and target in reviewed)  # no policy acted on a reviewed sample
    changes = pd.read_csv(tmp_path / "out" / "changes.csv")
    by_review = changes[changes["reason"] == REASON]
    assert set(by_review["index"]) == {*odd, int(flipped[2])}  # "keep" changes nothing, so it is no change


def test_cli_repair_refuses_a_bad_decisions_file_before_training(tmp_path):
    from typer.testing import CliRunner

    from trainground.cli import app

    bad = _write(tmp_path / "decisions.csv", [(1, "delete", "", True)])
    result = CliRunner().invoke(app, ["repair", "builtin:digits", "--decisions", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "row 2: unknown action 'delete'" in result.output
    assert not (tmp_path / "o").exists()
    missing = CliRunner().invoke(app, ["repair", "builtin:digits", "--decisions", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "nope.csv" in missing.output
