"""The label-issue finding states the model's validation competence; a weak model's flags are said to be unreliable."""

from __future__ import annotations

import numpy as np
import torch

from trainground.data import IndexedDataset, LabelEncoder, load_data
from trainground.diagnosis import Evidence, get_check, read_findings
from trainground.diagnosis.competence import MIN_SKILL, measure_competence
from trainground.diagnosis.dataset import DatasetDiagnosisConfig, diagnose_dataset
from trainground.engine import FitConfig
from trainground.repair.competence import measure_competence as repair_measure

QUICK = {"patience": 3, "second_pass": False, "training_checks": None}


def _flipped_blobs():
    """Three well-separated blobs, 18 of 180 labels flipped (as test_sample_checks)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 6
    y = np.repeat(np.arange(3), 60)
    x = centres[y] + rng.normal(size=(len(y), 5)) * 0.6
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(y), 18, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, len(flipped))) % 3
    return x, noisy, centres


def dataset(x, y):
    return IndexedDataset(features=torch.tensor(x, dtype=torch.float32), labels=torch.tensor(y, dtype=torch.long),
                          index=torch.arange(len(y)) + 100, encoder=LabelEncoder(("a", "b", "c")), kind="table",
                          name="blobs")


def oracle_probs(x, centres, temperature=4.0):
    """A model that learned the true classes: softmax of negative squared distances to the centres."""
    z = -((x[:, None, :] - centres[None]) ** 2).sum(-1) / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_a_weak_model_changes_the_words_never_the_flags():
    x, noisy, centres = _flipped_blobs()
    given = np.r_[np.zeros(60, int), np.ones(25, int), np.full(15, 2)]
    predicted = np.zeros(100, int)
    predicted[60:75] = 1  # 60 % majority baseline, 75 % accuracy: skill 0.375
    weak, strong = measure_competence(given, predicted, 3), measure_competence(given, given, 3)
    results = {}
    for name, competence in (("none", None), ("weak", weak), ("strong", strong)):
        extra = {} if competence is None else {"competence": competence}
        evidence = Evidence(train=dataset(x, noisy), pred_probs=oracle_probs(x, centres), embeddings=x, extra=extra)
        results[name] = get_check("label_issues").fn(evidence)
    for name in ("weak", "strong"):
        assert results[name].samples.equals(results["none"].samples)
    (plain,), (low,), (high,) = (results[k].findings for k in ("none", "weak", "strong"))
    assert "skill" not in plain.evidence and "too weak" not in plain.message
    assert high.message == plain.message and high.suggestion == plain.suggestion
    assert high.evidence["model_competent"] is True and high.evidence["skill"] == 1.0
    assert low.evidence["model_competent"] is False and low.evidence["skill"] == 0.375
    assert low.evidence["min_skill"] == MIN_SKILL and low.evidence["majority_baseline"] == 0.6
    assert "too weak for its flags to tell wrong labels from its own confusions" in low.message
    assert "75.0 % against 60.0 %" in low.message and "skill 0.38 < 0.5" in low.message
    assert "many wrong labels and a task this model cannot learn look the same" in low.message
    # 18 of 180 flagged: a model always right would measure (1 - 0.1 - 0.6) / 0.4 = 0.75 on that many wrong labels
    assert low.evidence["perfect_model_skill_if_flags_wrong"] == 0.75 and "skill 0.75" in low.message
    assert "stronger model" in low.suggestion and "by hand" in low.suggestion
    assert low.severity == plain.severity


def test_the_repair_gate_and_the_diagnosis_measure_alike():
    given, predicted = np.repeat([0, 1, 2], 10), np.tile([0, 1, 2], 10)
    a, b = measure_competence(given, predicted, 3), repair_measure(given, predicted, 3)
    assert (a.accuracy, a.majority, a.skill, a.skilled) == (b.accuracy, b.majority, b.skill, b.skilled)
    assert np.array_equal(a.precision, b.precision)


def _fit(epochs):
    return FitConfig(epochs=epochs, batch_size=32, lr=3e-3, device="cpu", threads=1, seed=0)


def test_random_labels_on_a_small_table_carry_the_competence_note(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 400
    data = IndexedDataset(features=torch.randn(n, 8, generator=g), labels=torch.randint(0, 3, (n,), generator=g),
                          index=torch.arange(n), encoder=LabelEncoder((0, 1, 2)), kind="table", name="random")
    diagnosis = diagnose_dataset(data, DatasetDiagnosisConfig(fit=_fit(8), **QUICK), run_dir=tmp_path / "run")
    (finding,) = [f for f in read_findings(tmp_path / "run" / "findings.json") if f.check == "label_issues"]
    assert finding.evidence["model_competent"] is False and finding.evidence["skill"] < MIN_SKILL
    assert "too weak for its flags" in finding.message
    assert int(diagnosis.table["is_label_issue"].sum()) == finding.evidence["flagged"]


def test_digits_with_a_few_wrong_labels_is_competent(tmp_path):
    data = load_data("builtin:digits")
    labels = data.labels.clone()
    rng = np.random.default_rng(0)
    wrong = torch.from_numpy(rng.choice(len(labels), 90, replace=False))
    labels[wrong] = (labels[wrong] + 1) % 10  # 5 % wrong: the finding has something to report
    noisy = IndexedDataset(data.features, labels, data.index, data.encoder, data.kind, data.name)
    diagnose_dataset(noisy, DatasetDiagnosisConfig(fit=_fit(4), **QUICK), run_dir=tmp_path / "run")
    (finding,) = [f for f in read_findings(tmp_path / "run" / "findings.json") if f.check == "label_issues"]
    assert finding.evidence["model_competent"] is True and finding.evidence["skill"] >= MIN_SKILL
    assert "too weak" not in finding.message and finding.message.endswith("probably carry a wrong label")
