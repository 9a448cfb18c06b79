"""``fit_two_player``: two models, two optimizers, two Guards; a seeded, resumable loop (GANs and kin).

The loop, in pseudocode (each player has its own :class:`TrainState`; ``critic`` is
``players[0]``, ``actor`` is ``players[1]``; the names are the caller's)::

    FIT_START                                       # every player's callbacks, then the game's
    for epoch in range(state.epoch, epochs):
        EPOCH_START
        for batch in batches(epoch):                # seeded permutation of the data, as in fit
            for player in players:                  # in order; a player acts on every
                if batch_number % player.every:     #   `every`-th batch (n_critic: every=n for
                    continue                        #   the second player)
                BATCH_START                         # player's callbacks; player.state.batch = batch
                with only(player) trainable, guard.autocast():
                    loss = game.loss(player.name, batch, models)
                AFTER_FORWARD
                player.guard.backward(loss, batch_size=len(batch))
                AFTER_BACKWARD
                window_closed = player.guard.step() # its own accumulation (fixed or adaptive K),
                                                    # clipping, spike skip, AMP unscale
                BATCH_END                           # player.state.step += 1 happened just before
            if batch_number % checkpoint_every == 0: CHECKPOINT
        each guard.step(force=True)                 # a short last window still steps
        EPOCH_END                                   # players' callbacks, then the game's
                                                    # (state.epoch_metrics: <name>_loss per player)
        CHECKPOINT (last epoch, or checkpoint_seconds passed)
    FIT_END                                         # then model-<name>.safetensors per player

While one player computes its loss, the other players' parameters do not require gradients,
so no gradient of one player ever reaches the other's accumulation window (the usual
``detach`` of a GAN's fake batch is still worth doing for speed). The game draws its noise
from torch's global generator, which checkpoints save and resume restores, so a resumed run
is bit-identical to an uninterrupted one.

Each player's default Guard is :meth:`GuardConfig.for_games`. Principle (fixed before it was
measured): in a two-player game a player's own loss is not a stationary objective, it moves with
the opponent, so no loss-based decision (spike skip and the rollback it escalates to, the trust
region's loss gate and its secant curvature, which also holds the opponent's move) acts on it by
default; protection read from the player's own gradient (ZClip's outlier clip of the norm, the
skip of a non-finite step) stays. ``fit``'s ``GuardConfig()`` skipped such loss jumps as spikes,
rolled the generator back while the discriminator kept its lead, and collapsed 2 of 3 GANs
(benchmarks/README.md, GAN section).

Run folder: ``metrics.jsonl`` (epoch records), ``metrics-<name>.jsonl`` and
``actions-<name>.jsonl`` per player, ``checkpoints/``, ``model-<name>.safetensors``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from trainground.bounds import AT_LEAST_ONE, NON_NEGATIVE
from trainground.engine.batches import BatchSource
from trainground.engine.callbacks import Callback, CallbackList
from trainground.engine.events import Event
from trainground.engine.fit_setup import fingerprint, resolve_device
from trainground.engine.metrics import MetricsWriter
from trainground.engine.model_file import save_model
from trainground.engine.rng import get_rng_state, set_rng_state
from trainground.engine.run_checkpoint import Checkpointer, open_run, resume_checkpoint
from trainground.engine.rundir import RunDir
from trainground.engine.state import TrainState
from trainground.errors import ConfigError
from trainground.gradients import ActionLog, Guard, GuardConfig

# Changing these mid-run changes the trajectory, so a resume must use the original values.
_RESUME_MUST_MATCH = ("batch_size", "seed", "players")


@dataclass
class TwoPlayerConfig:
    """Options of the two-player loop (the players' own options live in their Guards)."""

    # Passes over the data.
    epochs: Annotated[int, AT_LEAST_ONE] = 10
    # Real samples per micro-batch; a player with accumulation K steps once per K of its micro-batches.
    batch_size: Annotated[int, AT_LEAST_ONE] = 64
    # Seed of the batch permutation (the models' initialisation is the caller's).
    seed: int = 0
    # Step records buffered per host sync of each player's metrics file.
    log_every: Annotated[int, AT_LEAST_ONE] = 50
    # Checkpoint every N batches (0: at epoch ends only); a kill loses at most N batches of work.
    checkpoint_every: Annotated[int, NON_NEGATIVE] = 0
    # Also checkpoint at an epoch end when this many seconds passed since the last checkpoint.
    checkpoint_seconds: Annotated[float, NON_NEGATIVE] = 600.0
    # Checkpoints kept on disk (the newest ones).
    keep_checkpoints: Annotated[int, AT_LEAST_ONE] = 2
    # "cpu", "cuda" or "auto".
    device: str = "cpu"
    # torch intra-op threads (None: torch's default).
    threads: int | None = None


@dataclass
class Player:
    """One player: its model, optimizer, Guard and watchers.

    Args:
        name: used in metric keys and file names (``metrics-<name>.jsonl``); letters, digits, ``_``.
        model: the player's model (its parameters are what its optimizer updates).
        optimizer: over the model's parameters.
        guard: a ``GuardConfig``, a ready ``Guard`` over ``model``/``optimizer``, or None: the game's
            default :meth:`GuardConfig.for_games` (ZClip and the non-finite skip; no spike skip, no
            rollback on a spike, no trust region), not ``fit``'s ``GuardConfig()``. A player's loss
            moves whenever the other player learns, so nothing is decided on it by default.
        every: act on every ``every``-th batch (a GAN with n_critic = 5: ``every=5`` for the generator).
        callbacks: watchers of this player's events (they get the player's :class:`TrainState`).
    """

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    guard: Guard | GuardConfig | None = None
    every: int = 1
    callbacks: Sequence[Callback] = ()
    state: TrainState = field(init=False, repr=False)


class Game(Protocol):
    """The objective of each player: ``loss(name, batch, models)`` is the batch-mean loss that the
    player ``name`` minimises, given the batch ``(index, x, y)`` and every player's model by name."""

    def loss(self, player: str, batch: tuple[Tensor, Tensor, Tensor], models: Mapping[str, nn.Module]) -> Tensor:
        ...


@dataclass
class TwoPlayerState:
    """What the game-level callbacks see: the players' states and the loop's counters.

    ``step`` counts batches drawn (each player's ``state.step`` counts its own micro-batches);
    ``epoch_metrics`` after EPOCH_END holds ``<name>_loss`` per player, and whatever a game-level
    callback adds before the metrics are written (the writer runs last).
    """

    players: dict[str, TrainState]
    config: TwoPlayerConfig
    run_dir: RunDir | None
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    epoch_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop_requested: bool = False

    @property
    def models(self) -> dict[str, nn.Module]:
        return {name: s.model for name, s in self.players.items()}


@dataclass
class TwoPlayerResult:
    """What ``fit_two_player`` returns."""

    models: dict[str, nn.Module]
    history: list[dict[str, float]]
    steps: int
    run_dir: RunDir | None = None


@contextlib.contextmanager
def _only_trainable(player: Player, players: Sequence[Player]) -> Iterator[None]:
    """The other players' parameters stop requiring gradients for the duration (flags restored)."""
    frozen = [p for other in players if other is not player for p in other.model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def fit_two_player(
    players: Sequence[Player],
    game: Game,
    data: Dataset,
    *,
    config: TwoPlayerConfig | None = None,
    callbacks: Sequence[Callback] = (),
    run_dir: RunDir | str | Path | None = None,
    resume: bool = False,
) -> TwoPlayerResult:
    """Train two players against each other on ``data`` (items ``(index, x, y)`` or ``(x, y)``).

    Args:
        players: the players in the order they act on each batch (a GAN: discriminator, generator).
        game: each player's loss (:class:`Game`).
        data: the real data every batch is drawn from.
        config: loop options (``TwoPlayerConfig()`` when omitted).
        callbacks: game-level watchers; they get a :class:`TwoPlayerState` at FIT_START,
            EPOCH_START, EPOCH_END, CHECKPOINT and FIT_END (e.g. sample grids, generative metrics).
        run_dir: where the run is written; None keeps everything in memory.
        resume: continue the run in ``run_dir`` from its newest checkpoint (bit-identical end).
    """
    config = config or TwoPlayerConfig()
    names = [p.name for p in players]
    if len(players) != 2 or len(set(names)) != 2 or not all(n.replace("_", "").isalnum() for n in names):
        raise ConfigError(f"fit_two_player needs two players with distinct names of letters/digits/_, got {names}")
    if any(p.every < 1 for p in players):
        raise ConfigError("every player's `every` must be >= 1")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    source = BatchSource(data)
    if len(source) == 0:
        raise ConfigError("the training data are empty")
    run = open_run(run_dir, resume=resume, appended=("metrics.jsonl", "checkpoints", *(
        f"{kind}-{n}.jsonl" for n in names for kind in ("metrics", "actions"))))

    steps_per_epoch = -(-len(source) // config.batch_size)
    hooks: dict[str, CallbackList] = {}
    for p in players:
        p.model.to(device)
        if isinstance(p.guard, Guard):
            if p.guard.optimizer is not p.optimizer:
                raise ConfigError(f"player {p.name}: its Guard steps another optimizer than the player's")
            guard = p.guard
            if run is not None and guard.action_log is None:
                guard.action_log = ActionLog(run.path / f"actions-{p.name}.jsonl")
        else:
            guard = Guard(p.model, p.optimizer, config=p.guard or GuardConfig.for_games(),
                          actions=None if run is None else ActionLog(run.path / f"actions-{p.name}.jsonl"))
        p.state = TrainState(model=p.model, optimizer=p.optimizer, config=config,  # type: ignore[arg-type]
                             num_epochs=config.epochs, steps_per_epoch=-(-steps_per_epoch // p.every),
                             run_dir=run, guard=guard)
        own = list(p.callbacks)
        if run is not None:
            own.insert(0, MetricsWriter(run.path / f"metrics-{p.name}.jsonl", flush_every=config.log_every))
        hooks[p.name] = CallbackList(own)
    game_cbs = list(callbacks)
    if run is not None:
        game_cbs.append(MetricsWriter(run.metrics))  # last: it writes what the others added
    game_hooks = CallbackList(game_cbs)
    state = TwoPlayerState(players={p.name: p.state for p in players}, config=config, run_dir=run)
    models = state.models

    def fire(event: Event) -> None:
        for p in players:
            hooks[p.name].fire(event, p.state)
        game_hooks.fire(event, state)  # type: ignore[arg-type]  # game-level callbacks take TwoPlayerState

    generator = torch.Generator().manual_seed(config.seed)
    epoch_start_rng = generator.get_state()
    data_id = fingerprint(source)
    saved_config = {**asdict(config), "players": [[p.name, p.every] for p in players]}
    totals = {p.name: torch.zeros(2, device=device, dtype=torch.float64) for p in players}  # loss sum, samples

    if resume:
        ckpt = resume_checkpoint(run, config=saved_config, must_match=_RESUME_MUST_MATCH, fingerprint=data_id)
        for p in players:
            saved = ckpt["players"][p.name]
            p.model.load_state_dict(saved["model"])
            p.optimizer.load_state_dict(saved["optimizer"])
            p.state.guard.load_state_dict(saved["guard"])
            if p.state.guard.action_log is not None:
                p.state.guard.action_log.truncate(int(saved["actions_bytes"]))
            hooks[p.name].load_state_dict(saved["callbacks"])
            p.state.step, p.state.history = saved["step"], list(saved["history"])
            totals[p.name] = saved["totals"].to(device)
        game_hooks.load_state_dict(ckpt["callbacks"])
        set_rng_state(ckpt["rng"])
        epoch_start_rng = ckpt["batch_rng"]
        state.step, state.epoch, state.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        state.history = list(ckpt["history"])

    def payload() -> dict:
        return {
            "players": {p.name: {
                "model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "guard": p.state.guard.state_dict(), "callbacks": hooks[p.name].state_dict(),
                "step": p.state.step, "history": p.state.history, "totals": totals[p.name].cpu(),
                "actions_bytes": 0 if p.state.guard.action_log is None else p.state.guard.action_log.size(),
            } for p in players},
            "rng": get_rng_state(), "batch_rng": epoch_start_rng, "step": state.step, "epoch": state.epoch,
            "batch_in_epoch": state.batch_in_epoch, "history": state.history, "callbacks": game_hooks.state_dict(),
            "config": saved_config, "data_fingerprint": data_id,
        }

    checkpoints = Checkpointer(run, payload=payload, before_save=lambda: fire(Event.CHECKPOINT),
                               every_steps=config.checkpoint_every, every_seconds=config.checkpoint_seconds,
                               keep=config.keep_checkpoints)
    for p in players:
        p.model.train()
    fire(Event.FIT_START)
    while state.epoch < config.epochs:
        generator.set_state(epoch_start_rng)
        order = torch.randperm(len(source), generator=generator).split(config.batch_size)
        for p in players:  # after a resume too
            p.state.epoch, p.state.batch_in_epoch = state.epoch, state.batch_in_epoch
        if state.batch_in_epoch == 0:
            fire(Event.EPOCH_START)
        for rows in order[state.batch_in_epoch:]:
            batch = source.batch(rows, device)
            for p in players:
                if state.step % p.every == 0:
                    _player_step(p, players, game, batch, models, hooks[p.name], totals[p.name])
            state.step += 1
            state.batch_in_epoch += 1
            for p in players:
                p.state.epoch, p.state.batch_in_epoch = state.epoch, state.batch_in_epoch
            checkpoints.after_batch(state.step, last_of_epoch=state.batch_in_epoch == len(order))
        state.epoch_metrics = {}
        for p in players:
            p.state.guard.step(force=True)
            loss_sum, seen = totals[p.name].tolist()
            p.state.epoch_metrics = {"train_loss": loss_sum / max(seen, 1)}
            p.state.history.append(dict(p.state.epoch_metrics))
            state.epoch_metrics[f"{p.name}_loss"] = p.state.epoch_metrics["train_loss"]
            totals[p.name].zero_()
        fire(Event.EPOCH_END)
        state.history.append(dict(state.epoch_metrics))
        state.epoch += 1
        state.batch_in_epoch = 0
        for p in players:
            p.state.epoch, p.state.batch_in_epoch = state.epoch, 0
        epoch_start_rng = generator.get_state()
        checkpoints.after_epoch(state.step, final=state.epoch >= config.epochs or state.stop_requested)
        if state.stop_requested:
            break
    fire(Event.FIT_END)
    if run is not None:
        for p in players:
            save_model(run.path / f"model-{p.name}.safetensors", p.model)
    return TwoPlayerResult(models=models, history=state.history, steps=state.step, run_dir=run)


def _player_step(player: Player, players: Sequence[Player], game: Game, batch: tuple[Tensor, Tensor, Tensor],
                 models: Mapping[str, nn.Module], hooks: CallbackList, totals: Tensor) -> None:
    """One micro-batch of one player through its Guard; every line is an event or the maths between two."""
    state, guard = player.state, player.state.guard
    state.batch = batch
    hooks.fire(Event.BATCH_START, state)
    n = len(batch[1])
    with _only_trainable(player, players):
        with guard.autocast():
            state.loss = game.loss(player.name, batch, models)
        hooks.fire(Event.AFTER_FORWARD, state)
        guard.backward(state.loss, batch_size=n)
    hooks.fire(Event.AFTER_BACKWARD, state)
    state.window_closed = guard.step()
    with torch.no_grad():
        totals[0] += state.loss.detach().double() * n
        totals[1] += n
    state.step += 1
    hooks.fire(Event.BATCH_END, state)
