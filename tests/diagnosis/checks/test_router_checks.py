"""Router checks: a deliberately collapsed MoE router is found by each check, a healthy one by none."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainground.diagnosis import DiagnosisCallback, DiagnosisConfig, Severity
from trainground.diagnosis.checks._routing import router_windows
from trainground.engine import FitConfig, fit
from trainground.models import MoE, WithAuxLoss
from trainground.models.standardize import Standardize
from trainground.monitors import long_table

ROUTER_CHECKS = ("expert_collapse", "dead_experts", "load_imbalance", "router_entropy_collapse")


class MoENet(nn.Module):
    """Standardize -> Linear -> ReLU -> x + MoE(x) -> head."""

    def __init__(self, x: torch.Tensor, *, experts: int = 8) -> None:
        super().__init__()
        self.normalize = Standardize((x.shape[1],)).fit(x, dims=(0,))
        self.embed = nn.Sequential(nn.Linear(x.shape[1], 32), nn.ReLU())
        self.moe = MoE(32, num_experts=experts, k=2, hidden=32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(self.normalize(x))
        return self.head(h + self.moe(h))


def _run(digits, *, collapse: bool, run_dir=None) -> tuple[list, DiagnosisCallback]:
    data = digits.subset(np.arange(800))
    torch.manual_seed(0)
    model = MoENet(data.features)
    if collapse:
        with torch.no_grad():  # a gate bias no noise or gradient overcomes: expert 0 first, 1 second, always
            model.moe.gate.bias.copy_(torch.tensor([40.0, 30.0] + [0.0] * 6))
    callback = DiagnosisCallback(DiagnosisConfig(checks=ROUTER_CHECKS, sample_every=2))
    fit(model, data, config=FitConfig(epochs=5, batch_size=64, device="cpu", val_fraction=0.2),
        loss_fn=WithAuxLoss(nn.CrossEntropyLoss(), model), callbacks=[callback], run_dir=run_dir)
    return [f for f in callback.findings if f.severity >= Severity.WARNING], callback


def test_a_collapsed_router_is_found_by_every_router_check(digits):
    found, _ = _run(digits, collapse=True)
    assert {f.check for f in found} == set(ROUTER_CHECKS)
    assert all(f.subject == "layer:moe" for f in found)
    dead = next(f for f in found if f.check == "dead_experts")
    assert dead.evidence["dead"] == [2, 3, 4, 5, 6, 7] and dead.severity == Severity.ERROR


def test_router_findings_are_recomputed_from_the_run_directory(digits, tmp_path):
    from trainground.diagnosis.run_dir import diagnose_run

    live, _ = _run(digits, collapse=True, run_dir=tmp_path / "run")
    again = diagnose_run(tmp_path / "run", checks=ROUTER_CHECKS, with_data=False)
    assert {f.check for f in again} == {f.check for f in live} == set(ROUTER_CHECKS)


def test_a_healthy_router_is_not_flagged(digits):
    found, callback = _run(digits, collapse=False)
    assert found == []
    routers = router_windows(callback.evidence().layers)
    assert len(routers) == 1 and routers[0].load.shape == (5, 8)  # one window per epoch, 8 experts
    assert np.allclose(routers[0].load.sum(axis=1), 1.0)


def _table(loads: list[list[float]], *, tokens: float = 1000.0, entropy: float = 0.8) -> "object":
    rows = []
    for w, load in enumerate(loads):
        step = 10 * (w + 1)
        router = {"router_tokens": tokens, "router_experts": len(load), "router_top_k": 1,
                  "router_capacity_factor": 1.25, "router_entropy": entropy, "router_saturated_fraction": 0.0,
                  "router_dropped_fraction": 0.0, "router_balance": 1.0}
        rows.append(long_table([step], [w], ["moe"], {k: np.array([[v]]) for k, v in router.items()}))
        rows.append(long_table([step], [w], [f"moe.experts.{i}" for i in range(len(load))],
                               {"expert_load": np.array([load])}))
    import pandas as pd

    return pd.concat(rows, ignore_index=True)


def test_load_imbalance_needs_a_sustained_streak_not_a_young_router():
    from trainground.diagnosis.checks.load_imbalance import load_imbalance
    from trainground.diagnosis.evidence import Evidence

    skewed, even = [0.7, 0.1, 0.1, 0.1], [0.25] * 4
    assert load_imbalance(Evidence(layers=_table([skewed, skewed, even, even]))).findings == []
    assert len(load_imbalance(Evidence(layers=_table([even, skewed, skewed, skewed]))).findings) == 1


def test_too_few_tokens_is_no_verdict_about_experts():
    from trainground.diagnosis.checks.dead_experts import dead_experts
    from trainground.diagnosis.evidence import Evidence

    loads = [[0.5, 0.5, 0.0, 0.0]]
    assert dead_experts(Evidence(layers=_table(loads, tokens=40))).findings == []  # 40 < 20 x 4
    assert len(dead_experts(Evidence(layers=_table(loads, tokens=400))).findings) == 1


@pytest.mark.parametrize("entropy,fires", [(0.02, True), (0.3, False)])
def test_router_entropy_bar(entropy, fires):
    from trainground.diagnosis.checks.router_entropy_collapse import router_entropy_collapse
    from trainground.diagnosis.evidence import Evidence

    result = router_entropy_collapse(Evidence(layers=_table([[0.25] * 4], entropy=entropy)))
    assert bool(result.findings) == fires
