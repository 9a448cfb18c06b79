"""fit on multi-target data: dict targets (and dict inputs), per-task metrics, per-task gradients, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainground.data import MultiTargetDataset, TaskSpec
from trainground.engine import FitConfig, TaskKind, fit, read_metrics, register_task_kind
from trainground.engine.batches import BatchSource, to_device
from trainground.errors import ConfigError, DataError
from trainground.gradients import GuardConfig, TaskGradientConfig
from trainground.losses.multitask import MultiTaskLoss


def _data(n=600, seed=0, regression=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    coarse = (x[:, 0] > 0).long()
    fine = ((x[:, 1] > 0).long() * 2 + (x[:, 2] > 0).long())
    tasks = [TaskSpec("coarse", "class", 2), TaskSpec("fine", "class", 4)]
    targets = {"coarse": coarse, "fine": fine}
    if regression:
        tasks.append(TaskSpec("level", "regression"))
        targets["level"] = x[:, 3] * 2.0 + 1.0
    return MultiTargetDataset(x, targets, torch.arange(n), tuple(tasks), kind="table", name="toy")


class Heads(nn.Module):
    def __init__(self, tasks, inputs=8):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(inputs, 32), nn.ReLU())
        self.heads = nn.ModuleDict({t.name: nn.Linear(32, t.out_features) for t in tasks})

    def shared_parameters(self):
        return self.trunk.parameters()

    def forward(self, x):
        h = self.trunk(x)
        return {k: head(h) for k, head in self.heads.items()}


def _model(data, seed=0):
    torch.manual_seed(seed)
    return Heads(data.tasks)


def test_dict_batches_go_to_the_device_nested():
    value = {"image": torch.zeros(2, 3), "meta": {"a": torch.ones(2)}, "y": [1, 2]}
    moved = to_device(value, "cpu")
    assert moved["meta"]["a"].device.type == "cpu" and isinstance(moved["y"], list)
    data = _data(20)
    index, x, y = BatchSource(data).batch(torch.tensor([3, 5]), "cpu")
    assert index.tolist() == [3, 5] and set(y) == {"coarse", "fine"} and y["fine"].dtype == torch.long


def test_fit_multitarget_learns_every_task_and_logs_per_task_metrics(tmp_path):
    data = _data(regression=True)
    cfg = FitConfig(epochs=6, batch_size=32, lr=3e-3, device="cpu", log_every=5)
    result = fit(_model(data), data, config=cfg, run_dir=tmp_path / "run")
    final = result.final
    assert final["val_accuracy/coarse"] > 0.9 and final["val_accuracy/fine"] > 0.8
    assert final["val_mae/level"] < 0.6  # std of the target is 2: a model that ignores x scores ~1.6
    assert final["val_accuracy"] == pytest.approx((final["val_accuracy/coarse"] + final["val_accuracy/fine"]) / 2)
    assert final["train_loss/fine"] < result.history[0]["train_loss/fine"]
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    assert len(steps) == result.steps and {"loss/coarse", "loss/fine", "loss/level", "grad_norm"} <= set(steps[-1])
    # the step's loss is the (static, weight 1) sum of the task losses
    assert steps[-1]["loss"] == pytest.approx(sum(steps[-1][f"loss/{t}"] for t in ("coarse", "fine", "level")),
                                              rel=1e-5)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert {"val_loss/fine", "train_mae/level", "task_weight/coarse"} <= set(epochs[-1])


def test_single_target_step_records_are_unchanged(digits, tmp_path):
    from trainground.models import ModelConfig, build_model
    torch.manual_seed(0)
    model = build_model(ModelConfig(), input_shape=(64,), num_classes=10)
    fit(model, digits.subset(torch.arange(300)), config=FitConfig(epochs=1, device="cpu"), run_dir=tmp_path / "r")
    step = next(r for r in read_metrics(tmp_path / "r" / "metrics.jsonl") if r["kind"] == "step")
    assert set(step) == {"kind", "step", "epoch", "loss", "lr", "grad_norm", "clip_threshold", "accum_k",
                         "skipped", "update_scale"}


def test_per_task_gradients_clip_and_log_norms_and_cosines(tmp_path):
    data = _data(300)
    cfg = FitConfig(epochs=2, batch_size=50, device="cpu", log_every=1)
    fit(_model(data), data, config=cfg, run_dir=tmp_path / "run",
        tasks=TaskGradientConfig(max_norm=0.5, pcgrad=True), guard=GuardConfig())
    steps = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "step"]
    last = steps[-1]
    assert last["task_grad_norm/coarse"] > 0 and -1 <= last["task_grad_cos/coarse/fine"] <= 1
    assert 0 < last["task_clip_scale/fine"] <= 1


def test_uncertainty_weights_are_learned_and_dwa_changes_weights():
    data = _data(300)
    cfg = FitConfig(epochs=3, batch_size=50, device="cpu")
    loss = MultiTaskLoss(["coarse", "fine"], weighting="uncertainty")
    result = fit(_model(data), data, config=cfg, loss_fn=loss)
    assert not torch.equal(loss.weighting.log_vars.detach(), torch.zeros(2))  # optimised with the model
    assert result.final["task_weight/coarse"] != 1.0
    dwa = MultiTaskLoss(["coarse", "fine"], weighting="dwa")
    result = fit(_model(data), data, config=cfg, loss_fn=dwa)
    assert result.history[0]["task_weight/coarse"] == 1.0 and result.history[2]["task_weight/coarse"] != 1.0


def test_dict_inputs_train():
    base = _data(300)
    data = MultiTargetDataset({"a": base.features[:, :4], "b": base.features[:, 4:]}, base.targets, base.index,
                              base.tasks)

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Heads(base.tasks)

        def forward(self, x):
            return self.inner(torch.cat([x["a"], x["b"]], dim=1))

    torch.manual_seed(0)
    result = fit(TwoInputs(), data, config=FitConfig(epochs=6, batch_size=32, lr=3e-3, device="cpu"))
    assert result.final["val_accuracy/coarse"] > 0.7


@pytest.mark.parametrize("per_task", [False, True])
def test_resume_multitarget_is_bit_identical(tmp_path, per_task):
    data = _data(300)
    cfg = FitConfig(epochs=4, batch_size=40, device="cpu", checkpoint_seconds=0, threads=1)
    tasks = TaskGradientConfig(max_norm=1.0, pcgrad=True) if per_task else None

    def loss():
        return MultiTaskLoss(["coarse", "fine"], weighting="dwa")

    full = fit(_model(data), data, config=cfg, run_dir=tmp_path / "a", loss_fn=loss(), tasks=tasks)
    short = FitConfig(**{**cfg.__dict__, "epochs": 2})
    fit(_model(data), data, config=short, run_dir=tmp_path / "b", loss_fn=loss(),
        tasks=TaskGradientConfig(max_norm=1.0, pcgrad=True) if per_task else None)
    resumed = fit(_model(data, seed=5), data, config=cfg, run_dir=tmp_path / "b", resume=True, loss_fn=loss(),
                  tasks=TaskGradientConfig(max_norm=1.0, pcgrad=True) if per_task else None)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.history == resumed.history


def test_a_registered_kind_is_trained_without_touching_the_loop():
    data = _data(200)
    spec = TaskSpec("score", "ranked")
    targets = {**data.targets, "score": data.features[:, 0].clone()}
    data = MultiTargetDataset(data.features, targets, data.index, (*data.tasks, spec))
    register_task_kind("ranked", TaskKind(
        metric="sign_agreement", higher_is_better=True,
        default_loss=lambda s: (lambda out, y: ((out.squeeze(1) - y) ** 2).mean()),
        batch_metric=lambda out, y: (torch.sign(out.squeeze(1)) == torch.sign(y)).sum(),
        predict=lambda out: out.squeeze(1)), replace=True)
    result = fit(_model(data), data, config=FitConfig(epochs=2, device="cpu"))
    assert "val_sign_agreement/score" in result.final


def test_clear_errors():
    data = _data(100)
    with pytest.raises(ConfigError, match="unknown task kind"):
        fit(_model(data), MultiTargetDataset(data.features, data.targets, data.index,
                                             (data.tasks[0], TaskSpec("fine", "nope", 4))),
            config=FitConfig(epochs=1, device="cpu"))
    with pytest.raises(DataError, match="returning"):
        fit(nn.Linear(8, 2), data, config=FitConfig(epochs=1, device="cpu"))
    with pytest.raises(ConfigError, match="MultiTaskLoss"):
        fit(_model(data), data, config=FitConfig(epochs=1, device="cpu"), loss_fn=nn.CrossEntropyLoss())
    x = torch.randn(20, 8)
    with pytest.raises(ConfigError, match="multi-target"):
        fit(nn.Linear(8, 2), torch.utils.data.TensorDataset(x, torch.zeros(20, dtype=torch.long)),
            config=FitConfig(epochs=1, device="cpu"), tasks=TaskGradientConfig(per_task=True))
    assert np.array_equal(data.subset(np.array([1, 2])).index.numpy(), [1, 2])
