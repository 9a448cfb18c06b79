"""Model and plan edits of training repair: what they change, and that they change nothing else."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainground.engine import RunConfig
from trainground.errors import ConfigError
from trainground.models import MLP, SmallCNN
from trainground.repair import (
    Action,
    TrainingPlan,
    apply_training_actions,
    prepare_model,
)
from trainground.repair.model_edits import edit_applies


def swap(layer):
    return Action("swap_activation", "swap_dead_relu", "dead", target=layer, value="leaky_relu")


def reinit(layer, units, seed=0):
    return Action("reinit_units", "reinit_dead_units", "dead", target=layer, value=units, evidence={"seed": seed})


def test_swap_relu_for_leaky_relu_keeps_every_weight():
    torch.manual_seed(0)
    model = MLP(8, 3, hidden=(16, 16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = apply_training_actions(TrainingPlan(RunConfig()), [swap("body.1")])
    assert plan.model_edits == (swap("body.1"),) and plan.config == RunConfig()
    model = prepare_model(plan, model)
    assert isinstance(model.body[1], nn.LeakyReLU) and model.body[1].negative_slope == 0.01
    assert type(model.body[3]) is nn.ReLU  # only the named layer
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    x = -torch.ones(4, 8) * 50  # negative pre-activations: a leaky unit passes a gradient, a ReLU does not
    x.requires_grad_(True)
    model(x).sum().backward()
    assert model.body[0].weight.grad.abs().sum() > 0


class FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(F.relu(self.fc(x)))


def test_edits_that_cannot_apply_warn_and_leave_the_model_unchanged():
    model = FunctionalRelu()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not edit_applies(model, swap("relu"))
    with pytest.warns(RuntimeWarning, match="functional relu"):
        prepare_model(TrainingPlan(RunConfig(), model_edits=(swap("relu"),)), model)
    with pytest.warns(RuntimeWarning, match="not an nn.ReLU"):
        prepare_model(TrainingPlan(RunConfig(), model_edits=(swap("fc"),)), model)
    with pytest.warns(RuntimeWarning, match="unit ids"):
        prepare_model(TrainingPlan(RunConfig(), model_edits=(reinit("out", [99]),)), model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_reinit_changes_only_the_named_units():
    torch.manual_seed(0)
    model = MLP(8, 3, hidden=(16, 16))
    with torch.no_grad():
        model.body[2].bias.fill_(-5.0)  # the broken init the edit repairs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    units = [1, 4, 9]
    model = prepare_model(TrainingPlan(RunConfig(), model_edits=(reinit("body.3", units),)), model)
    weight, bias = model.body[2].weight, model.body[2].bias
    others = [i for i in range(16) if i not in units]
    assert torch.equal(weight[others], before["body.2.weight"][others])
    assert torch.equal(bias[others], before["body.2.bias"][others])
    assert not torch.equal(weight[units], before["body.2.weight"][units])
    bound = 1 / 16**0.5  # PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert bias[units].abs().max() <= bound and weight[units].abs().max() <= bound
    for k, value in before.items():
        if not k.startswith("body.2."):
            assert torch.equal(value, model.state_dict()[k]), k
    # seeded: the same plan builds the same model
    torch.manual_seed(0)
    again = MLP(8, 3, hidden=(16, 16))
    with torch.no_grad():
        again.body[2].bias.fill_(-5.0)
    again = prepare_model(TrainingPlan(RunConfig(), model_edits=(reinit("body.3", units),)), again)
    assert torch.equal(again.body[2].weight, weight)


def test_reinit_in_a_cnn_resets_the_batchnorm_of_the_units():
    torch.manual_seed(0)
    model = SmallCNN(1, 10, image_size=(8, 8), channels=(4, 8))
    relu = next(n for n, m in model.named_modules() if isinstance(m, nn.ReLU))
    conv, norm = model.body[0], model.body[1]
    with torch.no_grad():
        norm.weight.fill_(3.0)
        norm.bias.fill_(-2.0)
    before = conv.weight.clone()
    prepare_model(TrainingPlan(RunConfig(), model_edits=(reinit(relu, [0, 2]),)), model)
    assert torch.equal(conv.weight[[1, 3]], before[[1, 3]]) and not torch.equal(conv.weight[[0, 2]], before[[0, 2]])
    assert norm.weight.tolist() == [1.0, 3.0, 1.0, 3.0] and norm.bias.tolist() == [0.0, -2.0, 0.0, -2.0]


def test_rollback_and_task_weight_plan_edits():
    plan = TrainingPlan(RunConfig())
    plan = apply_training_actions(plan, [
        Action("rollback", "rollback", "spike", target=40, value={"checkpoint": "c.pt", "skip_samples": [5, 3]}),
        Action("rollback", "rollback", "spike", target=80, value={"checkpoint": "d.pt", "skip_samples": [3, 9]}),
        Action("task_weights", "task_weights", "loud", value={"parity": 0.01}),
        Action("task_weights", "task_weights", "loud", value={"digit": 2.0}),
    ])
    assert plan.extra["resume_from"] == {"checkpoint": "d.pt", "step": 80, "epoch": 0}
    assert plan.extra["skip_samples"] == (3, 5, 9)
    assert plan.extra["task_weights"] == {"parity": 0.01, "digit": 2.0}
    with pytest.raises(ConfigError, match="checkpoint"):
        apply_training_actions(plan, [Action("rollback", "p", "r", target=1, value={})])
    with pytest.raises(ConfigError, match="weights must be > 0"):
        apply_training_actions(plan, [Action("task_weights", "p", "r", value={"a": 0.0})])


def test_reinit_all_units_redraws_the_whole_layer_and_nothing_else():
    torch.manual_seed(0)
    model = MLP(8, 3, hidden=(16, 16))
    with torch.no_grad():
        model.body[0].weight.mul_(10.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepare_model(TrainingPlan(RunConfig(), model_edits=(reinit("body.1", "all"),)), model)
    assert model.body[0].weight.abs().max() <= 1 / 8**0.5 < before["body.0.weight"].abs().max()
    assert torch.equal(model.body[2].weight, before["body.2.weight"])
