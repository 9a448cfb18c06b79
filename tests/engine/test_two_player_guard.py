"""The two-player loop's default player Guard (GuardConfig.for_games): nothing is decided on a player's loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainground.engine.two_player import Player, TwoPlayerConfig, fit_two_player
from trainground.gradients import (
    Guard,
    GuardConfig,
    SecantTrustRegion,
    SpikeSkip,
    ZScoreClip,
)


class _Pull:
    """A toy game: the critic fits y = x @ w from x; its loss also holds the actor's offset squared,
    a term the critic cannot move (the opponent's part of its loss). The actor pushes its offset up."""

    def loss(self, player, batch, models):
        _, x, y = batch
        offset = models["actor"].offset
        if player == "critic":
            return nn.functional.mse_loss(models["critic"](x).squeeze(1), y) + offset.pow(2).sum()
        return -offset.sum()


class _Actor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(1))


def _players() -> list[Player]:
    torch.manual_seed(0)
    critic, actor = nn.Linear(4, 1), _Actor()
    return [Player("critic", critic, torch.optim.SGD(critic.parameters(), lr=0.05)),
            Player("actor", actor, torch.optim.SGD(actor.parameters(), lr=1.0))]


def test_fit_two_player_without_a_guard_uses_the_game_preset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    players = _players()
    fit_two_player(players, _Pull(), TensorDataset(x, x.sum(1)), config=TwoPlayerConfig(epochs=1, batch_size=16))
    for p in players:
        guard = p.state.guard
        assert guard.config == GuardConfig.for_games()
        kinds = [type(t) for t in guard.chain.transforms]
        assert ZScoreClip in kinds and SpikeSkip not in kinds and SecantTrustRegion not in kinds
    assert GuardConfig().spike_z is not None and GuardConfig().trust_region  # fit's default is unchanged


def _jumping_loss_run(config: GuardConfig) -> tuple[Guard, nn.Module, list[torch.Tensor]]:
    """A player trained 20 steps, then its loss jumps ~1e4-fold for 3 steps because the opponent moved
    (a term of its loss it has no gradient for): its own gradient is exactly what it was."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.05), config=GuardConfig(
        **{**config.__dict__, "check_every": 1, "snapshot_every": 5}))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g)
    y = x.sum(1) + 0.5 * torch.randn(32, generator=g)  # noise: the loss settles at a level, as in training
    opponent = torch.zeros(())
    for step in range(23):
        if step == 20:
            opponent = torch.tensor(100.0)  # the other player learned: this player's loss jumps
        loss = nn.functional.mse_loss(model(x).squeeze(1), y) + opponent.pow(2)
        before = [p.detach().clone() for p in model.parameters()]
        guard.backward(loss, batch_size=len(y))
        guard.step()
    return guard, model, before


def test_a_loss_jump_caused_by_the_opponent_is_not_a_spike_under_the_game_preset():
    guard, model, before = _jumping_loss_run(GuardConfig.for_games())
    assert guard.last_stats["skipped"] == 0.0
    assert not any(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # it stepped
    assert [a["action"] for a in guard.actions if a["action"] in ("skip", "rollback")] == []
    # the same jump under fit's default Guard is skipped and rolled back (what collapsed GANs)
    guard, _, _ = _jumping_loss_run(GuardConfig())
    assert "rollback" in [a["action"] for a in guard.actions]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_the_game_preset_still_skips_a_non_finite_gradient(bad):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    guard = Guard(model, torch.optim.SGD(model.parameters(), lr=0.05), config=GuardConfig.for_games())
    x = torch.randn(8, 4)
    guard.backward(model(x).pow(2).mean(), batch_size=8)
    guard.step()
    before = [p.detach().clone() for p in model.parameters()]
    guard.backward(model(x * bad).pow(2).mean(), batch_size=8)
    guard.step()
    assert guard.last_stats["skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
