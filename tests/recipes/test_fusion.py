"""``trainground recipe fusion`` end to end at a tiny size, and its parts."""

import json

import torch

from trainground.data import load_builtin_multitarget
from trainground.engine import task_kind
from trainground.metrics import object_recall
from trainground.recipes.fusion import FusionRecipeConfig, run_fusion


def test_recipe_trains_through_fit_and_logs_per_task_and_per_modality_gradients(tmp_path):
    config = FusionRecipeConfig(samples=96, test_samples=32, epochs=1, batch_size=32)
    result = run_fusion(config, out=tmp_path / "run")
    assert set(result.test) == {"mae", "r2", "map50"} and result.test["mae"] > 0
    assert set(result.issues) == {"score", "boxes", "boxes_box", "boxes_abstained", "boxes_withheld", "boxes_unconfirmed",
                                  "boxes_by_loss", "box_class_skill"}
    boxes = json.loads((tmp_path / "run" / "box_issues.json").read_text())
    assert {"skill", "min_skill", "skilled", "val_accuracy"} <= set(boxes["class_competence"])
    # The competence gate: a one-epoch detector is not skilled, so no flag says "another class" and
    # the withheld ones are listed apart.
    assert not boxes["class_competence"]["skilled"]
    assert all(row["issue"] == "missing" for row in boxes["flagged"])
    assert boxes["withheld"] == len(boxes["withheld_other_class"]) == result.issues["boxes_withheld"]
    assert boxes["abstain_rule"] == "unmatched" and boxes["abstained"] == len(boxes["abstained_boxes"])
    # The default rule "peers": every flag's object loss, against its peers, confirms it (z >= 2; missing:
    # z >= 3.5, also the unmatched boxes judged by the loss alone, marked by_loss); the others listed apart.
    assert boxes["box_rule"] == "peers" and all(row["loss_z"] >= 2 for row in boxes["flagged"])
    assert all(row["loss_z"] >= 3.5 for row in boxes["flagged"] if row["issue"] == "missing")
    assert all(row["issue"] == "unconfirmed" and row["loss_z"] < 3.5 for row in boxes["unconfirmed"])
    assert boxes["unconfirmed_count"] == len(boxes["unconfirmed"]) == result.issues["boxes_unconfirmed"]
    by_loss = [row for row in boxes["flagged"] if row["by_loss"]]
    assert boxes["by_loss_count"] == result.issues["boxes_by_loss"] == len(by_loss)
    assert all(row["best_iou"] < 0.5 and row["issue"] == "missing" for row in by_loss)
    assert all(row["best_iou"] < 0.5 and row["issue"] == "abstain" for row in boxes["abstained_boxes"])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    for key in ("task_grad_norm/score", "task_grad_norm/boxes", "task_grad_cos/score/boxes",
                "group_grad_norm/image", "group_grad_norm/text", "group_grad_norm/fusion", "task_clip_scale/boxes"):
        assert key in steps[0], key
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert "val_mae/score" in epochs[-1] and "val_object_recall/boxes" in epochs[-1]
    assert records[-1]["kind"] == "test"
    assert (tmp_path / "run" / "report.html").exists()


def test_products_builtin_is_multi_target_with_a_detection_task():
    data = load_builtin_multitarget("builtin:products", samples=30, seed=1)
    assert [(t.name, t.kind) for t in data.tasks] == [("score", "regression"), ("boxes", "detection")]
    _, x, y = data[0]
    assert x["image"].shape == (3, 32, 32) and y["boxes"].shape == (4, 5) and y["score"].ndim == 0


def test_object_recall_counts_covered_objects():
    target = torch.tensor([[[0, 0, 8, 8, 1], [16, 16, 24, 24, 0], [0, 0, 0, 0, -1]]], dtype=torch.float32)
    logits = torch.full((1, 2, 2), -9.0)
    logits[0, 0, 1] = 9.0  # cell 0 is confident of class 1 ...
    boxes = torch.tensor([[[0.0, 0, 8, 8], [16, 16, 24, 24]]])  # ... and cell 1 of nothing
    out = torch.cat([boxes, logits], dim=-1)
    assert object_recall(out, target).tolist() == [0.5]
    assert task_kind("detection").batch_metric(out, target).item() == 0.5


def test_recipe_thresholds_option_swaps_the_fixed_limits_for_dynamic_ones():
    from trainground.data.products import CLASSES
    from trainground.losses import MultiTaskLoss
    from trainground.losses.detection import DetectionLoss
    from trainground.losses.regression import RegressionLoss
    from trainground.models.fusion import FusionModel
    from trainground.recipes.fusion import build_tasks

    model = FusionModel(vocab_size=50, num_classes=len(CLASSES))
    loss = MultiTaskLoss({"score": RegressionLoss("mse"), "boxes": DetectionLoss(len(CLASSES), grid=model.grid, stride=4)})
    fixed = build_tasks(model, loss, FusionRecipeConfig())
    dynamic = build_tasks(model, loss, FusionRecipeConfig(thresholds="zscore"))
    assert fixed.dynamic is None and fixed.max_norm is not None
    assert dynamic.dynamic.kind == "zscore" and dynamic.max_norm is None
    assert set(dynamic.group_max_norm) == {"image", "text", "fusion"} and dynamic.group_thresholds is not None


def test_recipe_refuses_an_unknown_box_abstain_rule_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from trainground.cli import app

    result = CliRunner().invoke(app, ["recipe", "fusion", "--out", str(tmp_path / "run"), "--box-abstain", "maybe"])
    assert result.exit_code == 2
    assert "--box-abstain must be unmatched, group or none" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_recipe_refuses_an_unknown_box_rule_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from trainground.cli import app

    result = CliRunner().invoke(app, ["recipe", "fusion", "--out", str(tmp_path / "run"), "--box-rule", "vote"])
    assert result.exit_code == 2
    assert "--box-rule must be match, agree or peers" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
