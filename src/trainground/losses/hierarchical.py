"""Hierarchical cross-entropy: fine classes grouped under coarse ones (a tree of depth two)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from torch import Tensor

from trainground.errors import ConfigError
from trainground.losses.sample_weights import (
    Reduction,
    SampleWeightedLoss,
    SampleWeights,
    weighted_mean,
)


def tree_to_index(tree: Mapping[int, Hashable] | Sequence[Hashable], num_fine: int | None = None) -> tuple[Tensor, list]:
    """The coarse id of every fine class, from a mapping ``fine -> coarse``.

    Args:
        tree: ``{fine_class_id: coarse_label}`` or a sequence whose item ``f`` is the coarse
            label of fine class ``f``. Coarse labels may be any hashable values.
        num_fine: number of fine classes; every one of them must appear in ``tree``.

    Returns:
        ``([F] int64 coarse id per fine class, coarse labels in id order)``; coarse ids are
        numbered in order of first appearance over fine classes ``0, 1, ...``.
    """
    mapping = dict(enumerate(tree)) if not isinstance(tree, Mapping) else dict(tree)
    n = num_fine if num_fine is not None else len(mapping)
    missing = [f for f in range(n) if f not in mapping]
    extra = [f for f in mapping if not (isinstance(f, int) and 0 <= f < n)]
    if missing or extra:
        raise ConfigError(
            f"hierarchy: the tree must map each fine class 0..{n - 1} to a coarse class; "
            f"missing {missing[:5]}, unknown {extra[:5]}"
        )
    coarse_labels: list = []
    ids: dict[Hashable, int] = {}
    for f in range(n):
        ids.setdefault(mapping[f], len(ids))
        if len(coarse_labels) < len(ids):
            coarse_labels.append(mapping[f])
    return torch.tensor([ids[mapping[f]] for f in range(n)], dtype=torch.long), coarse_labels


def coarse_logits(fine_logits: Tensor, fine_to_coarse: Tensor, num_coarse: int | None = None) -> Tensor:
    """Log-probabilities (up to a shared constant) of the coarse classes: a log-sum-exp of
    the fine logits in each group, so ``softmax(coarse_logits)`` is the coarse marginal of
    ``softmax(fine_logits)``.

    Args:
        fine_logits: ``[N, F]``.
        fine_to_coarse: ``[F]`` coarse id of each fine class.
        num_coarse: number of coarse classes (``fine_to_coarse.max() + 1`` when omitted,
            which costs a host sync).

    Returns:
        ``[N, G]`` coarse logits.
    """
    groups = num_coarse if num_coarse is not None else int(fine_to_coarse.max()) + 1
    member = torch.nn.functional.one_hot(fine_to_coarse.to(fine_logits.device), groups).T.bool()  # [G, F]
    # -inf outside a group drops those classes from its log-sum-exp; every group is non-empty.
    masked = fine_logits.float().unsqueeze(1).masked_fill(~member, float("-inf"))  # [N, G, F]
    return torch.logsumexp(masked, dim=-1)


def hierarchical_cross_entropy(
    logits: Tensor,
    target: Tensor,
    fine_to_coarse: Tensor,
    *,
    coarse_weight: float = 1.0,
    num_coarse: int | None = None,
    sample_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """``CE(fine) + coarse_weight * CE(coarse marginal)`` per sample, then reduced.

    A mistake inside the right coarse group costs only the fine term; a mistake across groups
    costs both. With one coarse group the coarse term is 0 and this is plain cross-entropy.

    Args:
        logits: ``[N, F]`` fine logits.
        target: ``[N]`` fine class ids.
        fine_to_coarse: ``[F]`` coarse id of each fine class (see :func:`tree_to_index`).
        coarse_weight: lambda, the weight of the coarse term.
        num_coarse: number of coarse classes (avoids a host sync).
        sample_weight: ``[N]`` per-sample weights, or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    log_p = torch.log_softmax(logits.float(), dim=-1)
    fine = -log_p.gather(1, target.view(-1, 1)).squeeze(1)
    mapping = fine_to_coarse.to(logits.device)
    log_coarse = torch.log_softmax(coarse_logits(log_p, mapping, num_coarse), dim=-1)
    coarse = -log_coarse.gather(1, mapping[target].view(-1, 1)).squeeze(1)
    return weighted_mean(fine + coarse_weight * coarse, sample_weight, reduction)


@torch.no_grad()
def hierarchical_accuracy(
    logits: Tensor, target: Tensor, fine_to_coarse: Tensor, num_coarse: int | None = None
) -> dict[str, Tensor]:
    """Accuracy at both levels, as 0-d tensors (no host sync).

    Returns:
        ``fine_accuracy``; ``coarse_accuracy`` (argmax of the coarse marginal vs the true group);
        ``coarse_of_fine_accuracy`` (the group of the fine argmax vs the true group).
    """
    mapping = fine_to_coarse.to(logits.device)
    true_group = mapping[target]
    return {
        "fine_accuracy": (logits.argmax(1) == target).float().mean(),
        "coarse_accuracy": (coarse_logits(logits, mapping, num_coarse).argmax(1) == true_group).float().mean(),
        "coarse_of_fine_accuracy": (mapping[logits.argmax(1)] == true_group).float().mean(),
    }


class HierarchicalCrossEntropy(SampleWeightedLoss):
    """Module form of :func:`hierarchical_cross_entropy`, built from a tree ``fine -> coarse``.

    Args:
        tree: ``{fine_class_id: coarse_label}`` (or a sequence of coarse labels by fine id).
        num_fine: number of fine classes (default: the size of ``tree``).
        coarse_weight: lambda, weight of the coarse term.
        sample_weights: per-sample weights looked up by input index, or None.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(
        self,
        tree: Mapping[int, Hashable] | Sequence[Hashable],
        *,
        num_fine: int | None = None,
        coarse_weight: float = 1.0,
        sample_weights: SampleWeights | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(sample_weights)
        if coarse_weight < 0:
            raise ConfigError(f"hierarchy: coarse_weight must be >= 0, got {coarse_weight}")
        index, self.coarse_classes = tree_to_index(tree, num_fine)
        self.register_buffer("fine_to_coarse", index)
        self.num_coarse = len(self.coarse_classes)
        self.coarse_weight = float(coarse_weight)
        self.reduction: Reduction = reduction

    def coarse_targets(self, target: Tensor) -> Tensor:
        return self.fine_to_coarse.to(target.device)[target]

    def forward(self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        return hierarchical_cross_entropy(
            logits, target, self.fine_to_coarse, coarse_weight=self.coarse_weight, num_coarse=self.num_coarse,
            sample_weight=sample_weight, reduction=self.reduction,
        )

    def accuracy(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Fine and coarse accuracy of a batch (see :func:`hierarchical_accuracy`)."""
        return hierarchical_accuracy(logits, target, self.fine_to_coarse, self.num_coarse)
