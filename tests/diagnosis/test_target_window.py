import torch
from torch import nn

from trainground.data.tasks import MultiTargetDataset, TaskSpec
from trainground.diagnosis.target_window import EarlyTargetWindow
from trainground.engine import FitConfig, TrainState


class Echo(nn.Module):
    """Predicts the clean score (feature 0) and an object loss given in feature 1."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return {"score": x["v"][:, 0] * self.w, "boxes": x["v"][:, 1:2]}


class ObjectLoss:
    @staticmethod
    def per_object(output, target):
        return output  # [N, 1]: the "loss" the model output carries

    @staticmethod
    def class_margin(output, target):
        return 1.2 - output  # negative where the "loss" exceeds 1.2: only the wrong object


def test_window_flags_the_target_far_from_the_early_prediction_and_keeps_the_best_epoch():
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(200, generator=g)
    score = clean + 0.1 * torch.randn(200, generator=g)
    score[7] += 3.0
    object_loss = 1 + 0.1 * torch.rand(200, generator=g)
    object_loss[11] = 5.0
    data = MultiTargetDataset({"v": torch.stack([clean, object_loss], 1)},
                              {"score": score, "boxes": torch.zeros(200, 1, 5)}, torch.arange(200),
                              (TaskSpec("score", "regression"), TaskSpec("boxes", "detection", 1, shape=(1, 5))))
    window = EarlyTargetWindow(data, ObjectLoss(), class_check=True, box_check=False, batch_size=64)  # no grid output here
    state = TrainState(model=Echo(), optimizer=None, config=FitConfig(), num_epochs=2, steps_per_epoch=1)
    for val in (1.0, 2.0):  # the second epoch is worse: the window keeps the first
        state.epoch_metrics = {"val_loss/score": val, "val_loss/boxes": 0.0}
        window.on_epoch_end(state)
    assert window.window_epochs == 1
    results = window.results()
    assert results["score"].is_issue.nonzero().flatten().tolist() == [7]
    assert results["boxes"].is_issue.nonzero()[:, 0].tolist() == [11]
    assert window.issues() == {"score": 1, "boxes": 1, "boxes_class": 1}


def test_window_refuses_an_unknown_box_rule():
    import pytest

    data = MultiTargetDataset({"v": torch.zeros(4, 2)}, {"score": torch.zeros(4), "boxes": torch.zeros(4, 1, 5)}, torch.arange(4),
                              (TaskSpec("score", "regression"), TaskSpec("boxes", "detection", 1, shape=(1, 5))))
    with pytest.raises(ValueError, match="box_rule must be 'match', 'agree' or 'peers'"):
        EarlyTargetWindow(data, ObjectLoss(), box_rule="vote")  # type: ignore[arg-type]
