import math

import pytest
import torch

from trainground.errors import ConfigError
from trainground.losses import (
    DynamicWeightAverage,
    StaticWeighting,
    UncertaintyWeighting,
    dwa_weights,
    make_weighting,
)


def test_static():
    w = StaticWeighting(["a", "b"], {"b": 0.1})
    out = w({"a": torch.tensor(2.0), "b": torch.tensor(10.0)})
    assert out["a"].item() == 2.0 and out["b"].item() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="unknown tasks"):
        StaticWeighting(["a"], {"c": 1.0})
    with pytest.raises(ConfigError, match="do not match"):
        w({"b": torch.tensor(1.0), "a": torch.tensor(1.0)})


def test_uncertainty_weights_are_parameters_that_move_the_right_way():
    # Fixed task losses: the optimum is exp(-s_t) = 1 / (2 L_t), so the task with the larger
    # loss must end with the larger log-variance (smaller weight), and at the right value.
    w = UncertaintyWeighting(["small", "large"])
    assert [n for n, _ in w.named_parameters()] == ["log_vars"]
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    losses = {"small": torch.tensor(0.1), "large": torch.tensor(2.0)}
    for _ in range(1000):
        opt.zero_grad()
        sum(w(losses).values()).backward()
        opt.step()
    s = w.log_vars.detach()
    assert s[1] > 0 > s[0]
    assert s.tolist() == pytest.approx([math.log(0.2), math.log(4.0)], abs=0.02)
    assert w.weights().tolist() == pytest.approx([5.0, 0.25], rel=0.03)


def test_uncertainty_on_a_toy_two_task_problem_downweights_the_noisy_task():
    # A shared trunk, two binary tasks on the same inputs: task "noisy" has 40 % of its labels
    # redrawn at random, task "clean" none. The noisy task's loss stays high, so its learned
    # weight must end far below the clean one's, near the optimum 1 / (2 L).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y_clean = (x[:, 0] > 0).long()
    y_noisy = (x[:, 1] > 0).long()
    flip = torch.rand(512, generator=g) < 0.4
    y_noisy[flip] = torch.randint(0, 2, (int(flip.sum()),), generator=g)
    torch.manual_seed(0)
    trunk, heads = torch.nn.Linear(8, 16), torch.nn.ModuleDict({"clean": torch.nn.Linear(16, 2), "noisy": torch.nn.Linear(16, 2)})
    weighting = UncertaintyWeighting(["clean", "noisy"])
    opt = torch.optim.Adam([*trunk.parameters(), *heads.parameters(), *weighting.parameters()], lr=0.02)
    for _ in range(300):
        h = torch.relu(trunk(x))
        raw = {"clean": torch.nn.functional.cross_entropy(heads["clean"](h), y_clean),
               "noisy": torch.nn.functional.cross_entropy(heads["noisy"](h), y_noisy)}
        opt.zero_grad()
        sum(weighting(raw).values()).backward()
        opt.step()
    clean_w, noisy_w = weighting.weights().tolist()
    assert clean_w > 3 * noisy_w
    assert weighting.log_vars[0].item() < 0  # the clean task's weight rose from 1
    assert noisy_w == pytest.approx(1 / (2 * raw["noisy"].item()), rel=0.2)


def test_dwa_formula_and_schedule():
    prev, before = torch.tensor([1.0, 0.5]), torch.tensor([2.0, 0.5])
    w = dwa_weights(prev, before, temperature=2.0)
    e = torch.exp(torch.tensor([0.5, 1.0]) / 2.0)
    assert torch.allclose(w, 2 * e / e.sum())
    assert w.sum().item() == pytest.approx(2.0)

    dwa = DynamicWeightAverage(["a", "b"], temperature=2.0)
    for epoch_losses in ([2.0, 0.5], [1.0, 0.5]):
        for _ in range(3):
            dwa({"a": torch.tensor(epoch_losses[0]), "b": torch.tensor(epoch_losses[1])})
        weights = dwa.end_epoch()
        if epoch_losses[0] == 2.0:
            assert weights.tolist() == [1.0, 1.0]  # fewer than two epochs seen
    assert torch.allclose(dwa.weights(), w)
    assert dwa.weights()[1] > dwa.weights()[0]  # task b stopped improving: it gets more weight
    out = dwa({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    assert out["b"].item() == pytest.approx(w[1].item())
    clone = DynamicWeightAverage(["a", "b"])
    clone.load_state_dict(dwa.state_dict())
    assert torch.equal(clone.weights(), dwa.weights())


def test_make_weighting_errors():
    with pytest.raises(ConfigError, match="known: static, uncertainty, dwa"):
        make_weighting("gradnorm", ["a"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="temperature"):
        make_weighting("dwa", ["a"], temperature=0.0)
    with pytest.raises(ConfigError, match="'uncertainty'"):
        make_weighting("uncertainty", ["a"], temperature=2.0)
