import math

import numpy as np
import pandas as pd
import pytest

from trainground.diagnosis import (
    CheckResult,
    Evidence,
    Finding,
    Severity,
    read_findings,
    write_findings,
)
from trainground.diagnosis.registry import (
    _REGISTRY,
    get_check,
    register_check,
    run_checks,
)
from trainground.errors import ConfigError


def test_severity_orders_from_info_to_error():
    assert Severity.INFO < Severity.WARNING < Severity.ERROR
    assert max([Severity.WARNING, Severity.ERROR, Severity.INFO]) is Severity.ERROR


def test_findings_round_trip_through_json_most_severe_first(tmp_path):
    findings = [
        Finding("plateau", Severity.INFO, "run", "flat", {"slope": 1e-5}, "raise lr", step=40),
        Finding("exploding", Severity.ERROR, "layer:body.0", "big", {"norm": np.float32(1e4), "bad": math.inf}),
    ]
    path = tmp_path / "findings.json"
    write_findings(path, findings)
    back = read_findings(path)
    assert [f.check for f in back] == ["exploding", "plateau"]
    assert back[0].evidence == {"norm": 10000.0, "bad": "inf"}  # JSON has no inf
    assert back[1] == findings[0]


def test_check_result_validates_its_sample_table():
    ok = pd.DataFrame({"index": [0, 1], "score": [0.1, 0.9], "flag": [True, False]})
    assert CheckResult("label", samples=ok).worst is None
    with pytest.raises(ValueError, match="lacks columns"):
        CheckResult("label", samples=ok.drop(columns="flag"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CheckResult("label", samples=ok.assign(score=[0.5, 1.5]))


def test_registry_skips_checks_without_their_evidence_and_names_known_ones():
    @register_check("_test_needs_layers", kind="training", requires=("layers",))
    def needs_layers(evidence: Evidence) -> CheckResult:
        """Test check."""
        return CheckResult("_test_needs_layers", [Finding("_test_needs_layers", Severity.INFO, "run", "ran")])

    try:
        results, skipped = run_checks(Evidence(), ["_test_needs_layers"])
        assert results == [] and skipped == ["_test_needs_layers"]
        results, _ = run_checks(Evidence(layers=pd.DataFrame({"step": [0]})), ["_test_needs_layers"])
        assert results[0].findings[0].message == "ran"
        assert get_check("_test_needs_layers").description == "Test check."
        with pytest.raises(ConfigError, match="known checks: .*_test_needs_layers"):
            get_check("no_such_check")
        with pytest.raises(ValueError, match="unknown evidence"):
            register_check("_bad", kind="training", requires=("nonsense",))
    finally:
        _REGISTRY.pop("_test_needs_layers", None)


def test_print_findings_shows_most_severe_first_and_counts_the_rest():
    from rich.console import Console

    from trainground.diagnosis import print_findings

    console = Console(record=True, width=200)
    findings = [Finding(f"c{i}", Severity.INFO, "run", f"info {i}") for i in range(3)]
    findings.append(Finding("boom", Severity.ERROR, "layer:fc1", "exploding", suggestion="lower lr"))
    print_findings(findings, console=console, limit=2)
    text = console.export_text()
    assert text.index("boom") < text.index("info 0")
    assert "and 2 more" in text
    quiet = Console(record=True)
    print_findings(findings[:1], console=quiet, min_severity=Severity.WARNING)
    assert "nothing at or above warning" in quiet.export_text()
