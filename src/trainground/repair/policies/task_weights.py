"""Rebalance task loss weights when one task's gradient swamps the others on the shared parameters."""

from __future__ import annotations

from trainground.repair.actions import Action
from trainground.repair.policy import RepairContext, register_policy

NAME = "task_weights"
# An order of magnitude between the largest and the smallest per-task gradient norm on the
# shared parameters: the loud task decides the shared update (benchmarks/two_task.py shows
# the quiet task losing accuracy at 100x). Below 10x the tasks differ in scale as tasks do.
IMBALANCE = 10.0


def balanced_weights(norms: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """New loss weights that give every task the gradient norm of the quietest one.

    A static form of GradNorm's target (equal gradient norms on the shared weights): each
    task's weight is multiplied by ``min_norm / norm_task``, so the quietest task keeps its
    weight and no weight grows (the effective learning rate never rises).

    References:
        Chen, Badrinarayanan, Lee, Rabinovich. "GradNorm: Gradient Normalization for Adaptive
        Loss Balancing in Deep Multitask Networks." ICML 2018. https://arxiv.org/abs/1711.02257
    """
    quiet = min(norms.values())
    return {t: weights.get(t, 1.0) * quiet / n for t, n in norms.items()}


@register_policy(NAME, kind="training", requires=("task_gradients",))
def task_weights(context: RepairContext) -> list[Action]:
    """Scale task loss weights to equal gradient norms when one task's norm is >= 10x another's.

    Reads ``context.extra["task_grad_norms"]`` (``{task: mean gradient norm on the shared
    parameters}``, of the weighted losses, as ``gradients.tasks.TaskGradients`` measures them;
    ``repair.multitask.fit_multitask`` provides it) and ``context.extra["task_weights"]`` (the
    round's weights, 1 by default). Silent in single-task runs.
    """
    norms = {str(t): float(n) for t, n in (context.extra.get("task_grad_norms") or {}).items()}
    if len(norms) < 2 or min(norms.values()) <= 0:
        return []
    ratio = max(norms.values()) / min(norms.values())
    if ratio < IMBALANCE:
        return []
    weights = {str(t): float(w) for t, w in (context.extra.get("task_weights") or {}).items()}
    new = balanced_weights(norms, weights)
    loud = max(norms, key=norms.get)
    quiet = min(norms, key=norms.get)
    return [Action("task_weights", NAME, f"task {loud!r} has {ratio:.3g}x the gradient norm of {quiet!r} on the "
                   "shared parameters", value=new,
                   evidence={"task_grad_norms": norms, "ratio": ratio, "threshold": IMBALANCE, "before": weights,
                             "cosines": context.extra.get("task_grad_cos")})]
