"""``trainground recipe fusion``: ClipGuard Fusion on domain-randomised products, end to end.

A thin workflow over library calls: generate ``builtin:products`` (image + review ->
score, boxes) for training and, with another seed, a held-out split
(``data.products_dataset``); train ``models.FusionModel`` through ``fit`` on the
multi-target path with a ``MultiTaskLoss`` (MSE on the standardised score, focal + GIoU on
the boxes; static, uncertainty or DWA task weighting) and ``gradients.TaskGradients``
(per-task clip, per-modality or global clip, per-task and per-modality gradient norms and
the cosine between the tasks in ``metrics.jsonl``); then score the held-out split (MAE,
R^2, mAP@0.5), flag training targets with ``diagnosis.target_outliers`` (scores) and
``diagnosis.box_match`` (boxes missing where labelled, boxes of another class; evidence per
flagged box in ``box_issues.json``, and the boxes it abstained on: those no predicted box matches) from the early-learning window (``diagnosis.target_window``),
keeping by default only the flags the object's early-learning loss, against its class x size peers, confirms,
and judging the boxes no prediction covers by that loss alone (``box_rule="peers"``);
below the class-skill gate (measured on ``fit``'s validation images) the *another class* flags are
withheld and listed apart (``box_match.gate_class_flags``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from trainground.bounds import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, PROBABILITY
from trainground.data.products import CLASSES, Vocabulary, products_dataset
from trainground.data.tasks import MultiTargetDataset, gather
from trainground.diagnosis.competence import MIN_SKILL
from trainground.diagnosis.target_window import EarlyTargetWindow
from trainground.engine import Callback, FitConfig, RunDir, fit
from trainground.engine.atomic import atomic_write_text
from trainground.errors import TraingroundError
from trainground.gradients import DynamicClipConfig, GuardConfig, TaskGradients
from trainground.losses import MultiTaskLoss
from trainground.losses.detection import DetectionLoss
from trainground.losses.regression import RegressionLoss
from trainground.metrics import (
    mean_absolute_error,
    mean_average_precision,
    padded_targets,
    r2_score,
)
from trainground.models.detection import decode_detections
from trainground.models.fusion import FusionModel
from trainground.report.render import write_report

# Every flagged labelled box with its evidence (image, box, given / seen class, probabilities, IoU),
# the (class, size) groups with the share the detector localises, and the boxes it abstained on.
BOX_ISSUES_FILE = "box_issues.json"


@dataclass
class FusionRecipeConfig:
    """Options of ``trainground recipe fusion`` (the benchmark's defaults)."""

    # Training samples generated with seed 1000 + seed; 10 % of them are the validation split.
    samples: Annotated[int, AT_LEAST_ONE] = 1500
    # Held-out samples generated with seed 2000 + seed: another draw of every randomised factor.
    test_samples: Annotated[int, AT_LEAST_ONE] = 1000
    seed: int = 0
    # 12 (was 8): mAP@0.5 0.63 -> 0.70 and the box check's precision 0.21 -> 0.25 on seeds 0-2.
    epochs: Annotated[int, AT_LEAST_ONE] = 12
    # 16: ~1000 optimizer steps in 12 epochs; at 64 and 8 epochs (~170 steps) the detector had not learnt
    # the classes (mAP@0.5 0.35, class skill 0.38; benchmarks/README.md, "The detector learns the classes").
    batch_size: Annotated[int, AT_LEAST_ONE] = 16
    lr: Annotated[float, POSITIVE] = 3e-3
    # "modality": image parameters, text encoder and fused score head each clipped to
    # max_norm / sqrt(3) (the same bound on the whole update as "global": one clip on everything).
    clip: Literal["global", "modality"] = "modality"
    max_norm: Annotated[float, POSITIVE] = 1.0
    # Clip each task's gradient to max_norm / sqrt(2) before the tasks are summed.
    task_clip: bool = True
    # "fixed": the limits above; "percentile" / "zscore": each task's and each clip group's limit
    # follows a running statistic of its own gradient norm instead (AutoClip's 10th percentile /
    # ZClip's z-score per part, gradients.norm_thresholds), and the fixed limits are not used.
    thresholds: Literal["fixed", "percentile", "zscore"] = "fixed"
    # Multiplies the detection loss before the task weighting (100: the benchmark's "loud" image modality).
    detection_weight: Annotated[float, POSITIVE] = 1.0
    # The detection head's class loss: sigmoid focal loss with these alpha and gamma. The default,
    # gamma 0 and alpha 0.5, is plain balanced binary cross-entropy: Lin et al.'s 0.25 and 2 were made
    # for ~100k anchors with 1:1000 imbalance; on this 8x8 grid (~2.5 objects in 64 cells) the focal
    # factor mostly damps the wrong classes at an object's cell, the signal that teaches the classes.
    focal_alpha: Annotated[float, PROBABILITY] = 0.5
    focal_gamma: Annotated[float, NON_NEGATIVE] = 0.0
    # Image encoder's conv layers after its last stride (models.fusion.ImageEncoder).
    extra_layers: Annotated[int, NON_NEGATIVE] = 0
    # Task weighting: "uncertainty" learns one log-variance per task (Kendall et al. 2018).
    weighting: Literal["static", "uncertainty", "dwa"] = "uncertainty"
    # Labelled boxes the wrong-box check does not judge (diagnosis.box_match): "unmatched" (no
    # predicted box overlaps them: no prediction there to read), "group" (boxes of a class x size
    # group the detector localises less than half the time), "none" (judge every box).
    box_abstain: Literal["unmatched", "group", "none"] = "unmatched"
    # "peers" (the default since fresh seeds 50-55: F1 0.50 vs 0.44, precision 0.50 vs 0.47, recall 0.50 vs 0.41;
    # benchmarks/README.md; diagnosis.box_match.agree_with_peers): the object's early-learning loss, scored against
    # its class x size peers, must confirm a flag (robust z >= 2 for another class, >= 3.5 for missing; the others
    # listed as unconfirmed), and boxes no prediction covers are judged by that loss alone (z >= 3.5).
    # "agree" (the default before: F1 0.41 vs 0.28 on seeds 40-45): z >= 2 against all boxes, unmatched boxes
    # not judged (diagnosis.box_match.agree_with_loss); "match": the flags as they are.
    box_rule: Literal["match", "agree", "peers"] = "peers"
    threads: Annotated[int, AT_LEAST_ONE] | None = 1


@dataclass
class FusionResult:
    """Held-out scores, the flagged training targets, where the run is, how long it took."""

    test: dict[str, float]
    issues: dict[str, int]
    run_dir: Path
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    # The early-learning window: per-target issues (``results()``) and the box check (``box_issues()``).
    window: EarlyTargetWindow | None = None


class _Scaled(torch.nn.Module):
    """``weight * loss(output, target)``: a task loss made louder or quieter before the weighting."""

    def __init__(self, loss: torch.nn.Module, weight: float) -> None:
        super().__init__()
        self.loss, self.weight = loss, weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * self.loss(output, target)


def standardised(data: MultiTargetDataset, mean: float, std: float) -> MultiTargetDataset:
    return replace(data, targets={**data.targets, "score": (data.targets["score"] - mean) / std})


def build_tasks(model: FusionModel, loss: MultiTaskLoss, config: FusionRecipeConfig) -> TaskGradients:
    """Per-task gradients: norms and cosines on the parameters both tasks reach, the configured clips."""
    groups = model.modality_groups() if config.clip == "modality" else {"all": list(model.parameters())}
    if config.thresholds != "fixed":
        return TaskGradients([*model.parameters(), *loss.parameters()], shared=model.image, groups=groups,
                             dynamic=DynamicClipConfig(kind=config.thresholds), seed=config.seed)
    return TaskGradients(
        [*model.parameters(), *loss.parameters()], shared=model.image,
        groups=groups, group_max_norm=config.max_norm / math.sqrt(len(groups)),
        max_norm=config.max_norm / math.sqrt(2) if config.task_clip else None, seed=config.seed)


@torch.no_grad()
def predict_outputs(model: torch.nn.Module, features: dict[str, torch.Tensor], batch: int = 500) -> dict[str, torch.Tensor]:
    was = model.training
    model.eval()
    n = len(next(iter(features.values())))
    parts = [model(gather(features, torch.arange(i, min(i + batch, n)))) for i in range(0, n, batch)]
    model.train(was)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def test_scores(model: FusionModel, test: MultiTargetDataset, mean: float, std: float) -> dict[str, float]:
    out = predict_outputs(model, test.features)
    score = out["score"] * std + mean
    dets = decode_detections(out["boxes"], grid=model.grid)
    return {"mae": float(mean_absolute_error(score, test.targets["score"])),
            "r2": float(r2_score(score, test.targets["score"])),
            "map50": float(mean_average_precision(dets, padded_targets(test.targets["boxes"]))["map"])}


def run_fusion(config: FusionRecipeConfig, *, out: str | Path, overwrite: bool = False, console: Console | None = None,
               callbacks: list[Callback] | None = None) -> FusionResult:
    """Generate, train, test, diagnose (see the module docstring)."""
    vocab = Vocabulary()
    train = products_dataset(config.samples, 1000 + config.seed, vocabulary=vocab)
    test = products_dataset(config.test_samples, 2000 + config.seed, vocabulary=vocab)
    return train_fusion(config, train, test, vocab_size=len(vocab), out=out, overwrite=overwrite, console=console,
                        callbacks=callbacks)


def train_fusion(config: FusionRecipeConfig, train: MultiTargetDataset, test: MultiTargetDataset, *, vocab_size: int,
                 out: str | Path, overwrite: bool = False, console: Console | None = None,
                 callbacks: list[Callback] | None = None, report: bool = True) -> FusionResult:
    """Train on ``train``, score ``test``, diagnose ``train``'s targets (the recipe on given data)."""
    started, console = time.perf_counter(), console or Console()
    mean, std = float(train.targets["score"].mean()), float(train.targets["score"].std())
    torch.manual_seed(config.seed)
    model = FusionModel(vocab_size=vocab_size, num_classes=len(CLASSES), extra_layers=config.extra_layers)
    detection = DetectionLoss(len(CLASSES), grid=model.grid, stride=model.image.stride, alpha=config.focal_alpha,
                              gamma=config.focal_gamma)
    loss = MultiTaskLoss({"score": RegressionLoss("mse"),
                          "boxes": detection if config.detection_weight == 1.0 else _Scaled(detection, config.detection_weight)},
                         weighting=config.weighting)
    tasks = build_tasks(model, loss, config)
    window = EarlyTargetWindow(standardised(train, mean, std), detection, abstain=config.box_abstain,
                                box_rule=config.box_rule)
    run = RunDir.create(out, overwrite=overwrite, resumable=True)
    try:
        run.write_config({"recipe": "fusion", **asdict(config)})
        fit_config = FitConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                               threads=config.threads, log_every=10, device="cpu")
        guard = GuardConfig(zscore=None, percentile=None, trust_region=False)  # the clipping is TaskGradients'
        result = fit(model, standardised(train, mean, std), config=fit_config, loss_fn=loss, tasks=tasks, guard=guard,
                     run_dir=run, callbacks=[window, *(callbacks or [])])
    except TraingroundError:
        run.discard()
        raise
    scores = test_scores(model, test, mean, std)
    # The competence gate: how well the detector names what it localises, on the images fit held out
    # (never trained on); below the class tasks' skill gate its "another class" flags are withheld.
    window.competence_images = torch.as_tensor(np.isin(train.index.numpy(), result.val_index))
    issues = window.issues()
    boxes = window.box_issues()["boxes"]
    competence = boxes.competence
    issues["boxes_abstained"] = int(boxes.abstained.sum())
    issues["boxes_withheld"] = int(boxes.withheld.sum())
    issues["boxes_unconfirmed"] = int(boxes.unconfirmed.sum()) if boxes.unconfirmed is not None else 0
    issues["boxes_by_loss"] = int(boxes.by_loss.sum()) if boxes.by_loss is not None else 0
    issues["box_class_skill"] = competence.skill
    with open(run.metrics, "a", encoding="utf-8") as fh:  # listed in the manifest by fit()
        fh.write(json.dumps({"kind": "test", "step": result.steps, **{f"test_{k}": v for k, v in scores.items()},
                             "score_issues": issues["score"], "box_issues": issues["boxes_box"],
                             "box_abstained": issues["boxes_abstained"]}) + "\n")
    run.record(BOX_ISSUES_FILE)  # listed before it is written
    atomic_write_text(run.path / BOX_ISSUES_FILE, json.dumps(
        {"class_bars": boxes.class_bars.tolist(), "background_bar": boxes.background_bar, "classes": list(CLASSES),
         "window_epochs": window.window_epochs, "abstain_rule": window.abstain, "box_rule": window.box_rule, "size_edges": boxes.size_edges.tolist(), "groups": boxes.groups(),
         "class_competence": {**competence.figures(), "skilled": competence.skilled, "rows": "matched boxes of "
                              "the validation images"},
         "abstained": issues["boxes_abstained"], "flagged": boxes.evidence(train.targets["boxes"], train.index),
         "abstained_boxes": boxes.evidence(train.targets["boxes"], train.index, abstained=True),
         "withheld": issues["boxes_withheld"], "withheld_other_class": boxes.evidence(train.targets["boxes"], train.index,
                                                                                        withheld=True),
         "by_loss_count": issues["boxes_by_loss"], "unconfirmed_count": issues["boxes_unconfirmed"], "unconfirmed": boxes.evidence(train.targets["boxes"], train.index, unconfirmed=True)}, indent=1))
    if report:
        write_report(run.path)  # the per-task loss, metric and gradient panels of a multi-target run
    outcome = FusionResult(scores, issues, run.path, time.perf_counter() - started, result.history, window)
    print_outcome(outcome, config, console)
    return outcome


def print_outcome(result: FusionResult, config: FusionRecipeConfig, console: Console) -> None:
    table = Table(title=f"fusion recipe ({config.clip} clip, task clip {config.task_clip}, {config.weighting} weighting)",
                  title_justify="left")
    for column in ("held-out MAE", "R^2", "mAP@0.5", "scores flagged", "boxes flagged", "boxes abstained"):
        table.add_column(column)
    t = result.test
    table.add_row(f"{t['mae']:.3f}", f"{t['r2']:.3f}", f"{t['map50']:.3f}", str(result.issues["score"]),
                  str(result.issues["boxes_box"]), str(result.issues.get("boxes_abstained", 0)))
    console.print(table)
    if result.issues.get("boxes_unconfirmed"):
        console.print(f"{result.issues['boxes_unconfirmed']} box flags (not counted above) were not confirmed by the object's "
                      f"early-learning loss (box rule '{config.box_rule}'): listed in box_issues.json, unconfirmed.",
                      highlight=False, soft_wrap=True)
    if result.issues.get("boxes_by_loss"):
        console.print(f"{result.issues['boxes_by_loss']} of the boxes flagged have no predicted box on them and were judged "
                      "by their early-learning loss alone (box_issues.json: by_loss).", highlight=False, soft_wrap=True)
    skill = result.issues.get("box_class_skill")
    if skill is not None and not skill >= MIN_SKILL:
        console.print(f"[yellow]The detector's class skill on the validation images is {skill:.2f} (below "
                      f"{MIN_SKILL}): its {result.issues.get('boxes_withheld', 0)} 'another class' box flags would be "
                      "as much its own confusions as swapped labels, so they are withheld (listed apart in "
                      "box_issues.json, withheld_other_class).[/yellow]", highlight=False, soft_wrap=True)
    console.print(f"{result.seconds:.0f} s; run: {result.run_dir}", highlight=False, soft_wrap=True)


__all__ = ["BOX_ISSUES_FILE", "FusionRecipeConfig", "FusionResult", "run_fusion", "test_scores", "train_fusion"]
