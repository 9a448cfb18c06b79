"""Multi-task training repair: a 100x louder task is rebalanced and the quiet task recovers."""

import torch
from torch import nn

from trainground.engine import FitConfig
from trainground.repair.multitask import fit_multitask, repair_task_weights


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.heads = nn.ModuleDict({"digit": nn.Linear(64, 10), "parity": nn.Linear(64, 2)})

    def forward(self, x):
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}


def tasks(digits, rows):
    y = digits.labels[rows]
    return digits.features[rows] / 16, {"digit": y, "parity": y % 2}


def test_a_loud_task_is_rebalanced_and_the_quiet_task_recovers(digits):
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    train, val = tasks(digits, order[:1200]), tasks(digits, order[1200:])
    config = FitConfig(optimizer="sgd", lr=0.05, momentum=0.9, epochs=3)
    result = repair_task_weights(TwoHeads, train, val=val, config=config, weights={"parity": 100.0},
                                 shared=lambda m: m.trunk.parameters(), max_rounds=2)
    first, best = result.rounds[0], result.rounds[result.best_round]
    assert first.task_grad_norms["parity"] > 10 * first.task_grad_norms["digit"]
    (round_, action), *_ = result.actions
    assert round_ == 1 and action.action == "task_weights"
    assert action.value["digit"] == 1.0 and action.value["parity"] < 100.0  # no weight raised
    assert best.val_accuracy["digit"] > first.val_accuracy["digit"] + 0.3
    assert result.weights["parity"] < 100.0


def test_balanced_tasks_get_no_action(digits):
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    train, val = tasks(digits, order[:600]), tasks(digits, order[1200:])
    torch.manual_seed(0)
    run = fit_multitask(TwoHeads(), train, val=val, config=FitConfig(epochs=2), shared=lambda m: m.trunk.parameters())
    assert set(run.task_grad_norms) == {"digit", "parity"} and set(run.task_grad_cos) == {"digit/parity"}
    result = repair_task_weights(TwoHeads, train, val=val, config=FitConfig(epochs=2),
                                 shared=lambda m: m.trunk.parameters())
    assert result.actions == [] and len(result.rounds) == 1
