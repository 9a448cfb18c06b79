"""The callbacks' chain is the one the Guard would build: from the model and the optimizer."""

from __future__ import annotations

import torch
from torch import nn

from trainground.gradients import GuardConfig
from trainground.gradients.level_normalize import LevelNormalize
from trainground.integrations.framework_step import DEFAULT_GUARD, FrameworkGradients


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


def _one_step(model: nn.Module, optimizer: torch.optim.Optimizer, gradients: FrameworkGradients) -> bool:
    torch.manual_seed(0)
    x = torch.randn(5, 7, 3) if isinstance(model, _Recurrent) else torch.randn(5, 3)
    loss = model(x).square().mean()
    optimizer.zero_grad()
    loss.backward()
    return gradients.apply(optimizer, loss, model)


def _has_level(gradients: FrameworkGradients) -> bool:
    assert gradients.chain is not None
    return any(isinstance(t, LevelNormalize) for t in gradients.chain)


def test_a_recurrent_model_under_adam_gets_the_level_rescaling():
    model = _Recurrent()
    gradients = FrameworkGradients(GuardConfig())
    assert _one_step(model, torch.optim.Adam(model.parameters()), gradients)
    assert _has_level(gradients)


def test_not_under_sgd_nor_on_a_feed_forward_model_nor_when_off():
    recurrent, mlp = _Recurrent(), nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    cases = [(recurrent, torch.optim.SGD(recurrent.parameters(), lr=0.1), GuardConfig()),
             (mlp, torch.optim.Adam(mlp.parameters()), GuardConfig()),
             (recurrent, torch.optim.Adam(recurrent.parameters()), GuardConfig(recurrent_level="off"))]
    for model, optimizer, config in cases:
        gradients = FrameworkGradients(config)
        _one_step(model, optimizer, gradients)
        assert not _has_level(gradients)


def test_state_loaded_before_the_first_step_reaches_the_chain():
    model = _Recurrent()
    first = FrameworkGradients(GuardConfig())
    optimizer = torch.optim.Adam(model.parameters())
    for _ in range(3):
        _one_step(model, optimizer, first)
    saved = first.state_dict()
    resumed = FrameworkGradients(GuardConfig())
    resumed.load_state_dict(saved)
    assert resumed.chain is None and resumed.state_dict() == saved  # held until the chain exists
    _one_step(model, optimizer, resumed)
    assert resumed.chain is not None and _has_level(resumed)
    level = next(t for t in resumed.chain if isinstance(t, LevelNormalize))
    fresh = FrameworkGradients(GuardConfig())
    _one_step(model, optimizer, fresh)
    assert level.state_dict() != next(t for t in fresh.chain if isinstance(t, LevelNormalize)).state_dict()


def test_the_default_config_is_not_shared():
    a, b = FrameworkGradients(DEFAULT_GUARD), FrameworkGradients(DEFAULT_GUARD)
    assert a.config is not DEFAULT_GUARD and a.config is not b.config
