"""The repair section shows the paired test per round, the class counts and what was declined or skipped."""

from pathlib import Path

from trainground.report.model import RepairReport
from trainground.report.repair_section import repair_tables


def test_the_section_shows_the_test_the_class_counts_and_the_declined_relabels():
    rounds = [
        {"round": 0, "val_accuracy": 0.5, "actions": {}, "run_dir": "round_0", "comparison": None,
         "class_counts": None, "skipped_policies": {"rollback": "needs checkpoints"},
         "findings": [{"message": "the model is too weak to relabel: skill 0.05 < 0.5"}], "class_cap": {"a": 3}},
        {"round": 1, "val_accuracy": 0.52, "actions": {"reweight": 4}, "run_dir": "round_1",
         "comparison": {"against": 0, "wins": 5, "losses": 2, "p_value": 0.23, "better": False},
         "class_counts": {"a": {"given": 10, "before": 10, "after": 8}, "b": {"given": 5, "before": 5, "after": 5}}},
    ]
    tables = repair_tables(RepairReport(path=Path("."), rounds=rounds, best_round=0))
    header, rows = tables.rounds
    assert rows[0][0] == "0 (kept)" and "rejected against round 0: +5 / -2" in rows[1][header.index(
        "against the kept round (rows won / lost, one-sided p)")]
    assert tables.classes == (["class", "given", "round 1"], [["a", "10", "8"], ["b", "5", "5"]])
    assert any("too weak to relabel" in n for n in tables.notes)
    assert any("rollback skipped" in n for n in tables.notes) and any("class 'a'" in n for n in tables.notes)


def test_the_section_names_the_reference_round_and_lists_it():
    rounds = [
        {"round": 0, "val_accuracy": 0.9, "actions": {}, "run_dir": "round_0", "comparison": None},
        {"round": 1, "val_accuracy": 0.89, "actions": {"relabel": 30}, "run_dir": "round_1",
         "comparison": {"against": -1, "wins": 6, "losses": 1, "p_value": 0.06, "better": False, "kept": True,
                        "non_inferiority": [{"against": -1, "margin": 0.02, "holds": True, "p_value": 0.01}]}},
    ]
    reference = {"val_accuracy": 0.875, "test_accuracy": 0.91, "trainings": 0.4}
    tables = repair_tables(RepairReport(path=Path("."), rounds=rounds, best_round=1, reference=reference))
    header, rows = tables.rounds
    column = header.index("against the kept round (rows won / lost, one-sided p)")
    assert rows[1][column].startswith("kept against the reference round: +6 / -1")
    assert "not worse than the reference round" in rows[1][column]
    assert rows[-1][0].startswith("reference") and rows[-1][1] == "87.5 %"
