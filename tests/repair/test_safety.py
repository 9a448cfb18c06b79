"""The rules that keep a repair from wrecking hard data: significance, competence, class share."""

from __future__ import annotations

import numpy as np
import pytest

from trainground.data import IndexedDataset
from trainground.repair import Action, RepairContext, RepairState
from trainground.repair.class_share import MAX_LOSS, cap_class_loss, class_mass
from trainground.repair.competence import (
    MIN_SKILL,
    label_noise_estimate,
    measure_competence,
)
from trainground.repair.policy import run_policies_reporting
from trainground.repair.selection import compare, keep_best


def test_four_net_rows_out_of_244_are_not_significant_but_a_clear_gain_is():
    kept = np.zeros(244)
    new = np.zeros(244)
    kept[:6], new[6:16] = 1, 1  # the new round wins 10 rows, loses 6: +4 net
    small = compare(kept, new)
    assert (small.wins, small.losses) == (10, 6) and not small.better and small.p_value > 0.2
    new[16:30] = 1  # wins 24, loses 6
    assert compare(kept, new).better
    assert not compare(kept, kept).better  # a tie keeps the earlier round
    assert keep_best([kept, kept.copy()], 0)[0] == 0 and keep_best([kept, new], 0)[0] == 1


def test_exact_mcnemar_p_value():
    # 8 discordant pairs, all won by the new round: p = 0.5 ** 8
    kept, new = np.zeros(20), np.r_[np.ones(8), np.zeros(12)]
    assert compare(kept, new).p_value == pytest.approx(0.5 ** 8)


def test_a_model_barely_above_the_majority_baseline_may_not_relabel():
    given = np.r_[np.zeros(60, int), np.ones(25, int), np.full(15, 2)]
    predicted = np.zeros(100, int)
    predicted[60:75] = 1  # 60 % majority baseline, 75 % accuracy: skill 0.375
    weak = measure_competence(given, predicted, 3)
    assert weak.skill == pytest.approx(0.375) and weak.skill < MIN_SKILL
    assert not weak.may_relabel_into().any()
    (finding,) = weak.findings(("a", "b", "c"))
    assert finding.message.startswith("the model is too weak to relabel")
    strong = measure_competence(given, given, 3)
    assert strong.may_relabel_into().all() and strong.findings(("a", "b", "c")) == []


def test_relabelling_into_an_imprecise_class_is_declined():
    given = np.r_[np.repeat([0, 1, 2], 40), np.full(10, 3)]
    predicted = given.copy()
    predicted[:12] = 3  # class 3 predicted 22 times, right 10: precision 0.45
    comp = measure_competence(given, predicted, 4)
    assert comp.skilled and list(comp.may_relabel_into()) == [True, True, True, False]
    assert "'d'" in comp.findings(("a", "b", "c", "d"))[0].message


def _state(labels):
    labels = np.asarray(labels)
    n = len(labels)
    return RepairState(np.arange(n), labels.copy(), labels.copy(), np.full(n, "", dtype=object), np.ones(n))


def test_no_class_loses_more_than_a_quarter_of_its_rows():
    labels = np.r_[np.zeros(20, int), np.ones(80, int)]
    state = _state(labels)
    rows = np.ones(len(labels), bool)
    # relabel 12 of class 0's 20 rows to class 1 (strongest evidence first: lower score)
    actions = [Action("relabel", "relabel", "t", target=i, value=1, score=i / 100) for i in range(12)]
    actions += [Action("reweight", "reweight", "t", target=i, value=0.1, score=0.5) for i in range(12, 14)]
    new, applied, dropped = cap_class_loss(state, actions, rows, 2)
    mass = class_mass(new, rows, 2)
    assert mass[0] >= (1 - MAX_LOSS) * 20 - 1e-9 and dropped[0] > 0
    # the weakest evidence went first: the kept relabels are the lowest scores
    kept_relabels = sorted(a.target for a in applied if a.action == "relabel")
    assert kept_relabels == list(range(len(kept_relabels)))
    # a class that keeps its share is left alone
    _, applied_small, dropped_small = cap_class_loss(state, actions[:3], rows, 2)
    assert dropped_small == {} and len(applied_small) == 3


def test_a_policy_the_loop_cannot_feed_is_reported_as_skipped():
    data = IndexedDataset.__new__(IndexedDataset)
    context = RepairContext(round=0, data=data)
    actions, skipped = run_policies_reporting(context, ["rollback", "relabel", "reinit_dead_units"])
    assert actions == []
    assert set(skipped) == {"rollback", "relabel", "reinit_dead_units"} and "checkpoints" in skipped["rollback"]


def test_the_noise_estimate_is_reported_but_never_unlocks_relabelling():
    # 10 balanced classes, half of the validation labels wrong (symmetric), a model that is always right:
    # measured skill ~0.43 < 1/2. Confident learning would call half of the labels wrong; the finding says so,
    # with the skill a perfect model would measure, and still declines (the estimate comes from the same model).
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(10), 30)
    given = truth.copy()
    wrong = rng.permutation(len(truth))[:150]
    given[wrong] = (truth[wrong] + rng.integers(1, 10, size=150)) % 10
    comp = measure_competence(given, truth, 10, label_noise=0.5)
    assert comp.skill < MIN_SKILL and not comp.may_relabel_into().any()
    majority = np.bincount(given).max() / len(given)
    assert comp.perfect_skill == pytest.approx((0.5 - majority) / (1 - majority))
    (finding,) = comp.findings(tuple("abcdefghij"))
    assert "estimates 50 % of them wrong" in finding.message
    assert finding.evidence["label_noise_estimate"] == 0.5
    assert finding.evidence["perfect_model_skill"] == pytest.approx(comp.perfect_skill, abs=1e-4)
    assert "label_noise_estimate" not in measure_competence(given, truth, 10).findings(tuple("abcdefghij"))[0].evidence


def test_label_noise_estimate_counts_the_confident_off_diagonal():
    labels = np.repeat([0, 1], 50)
    probs = np.tile([0.9, 0.1], (100, 1))
    probs[labels == 1] = [0.1, 0.9]
    flipped = np.r_[0:10, 50:60]  # 20 % of the rows confidently in the other class
    probs[flipped] = probs[flipped][:, ::-1]
    assert label_noise_estimate(labels, probs) == pytest.approx(0.2)
    assert label_noise_estimate(labels, None) is None
