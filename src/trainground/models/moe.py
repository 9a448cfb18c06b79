"""A sparse mixture-of-experts layer: noisy top-k gating, a load-balancing loss, expert capacity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A token whose full-softmax gate gives its expert >= 0.99 is "saturated": the softmax's
# derivative p(1 - p) <= 0.0099 there (4 % of its peak 0.25), so the router barely learns
# from it (the same 1 % margin as the activation monitor's saturation rule).
SATURATED_GATE = 0.99


@dataclass
class RoutingStats:
    """What one training forward of an :class:`MoE` routed (detached tensors, on the device).

    Attributes:
        tokens: number of tokens (scalar).
        assigned: ``[E]`` assignments each expert was chosen for (k per token), before capacity.
        kept: ``[E]`` assignments each expert processed (``assigned - kept`` were dropped).
        importance: ``[E]`` sum over tokens of the full-softmax gate probability.
        entropy: sum over tokens of the gate distribution's entropy (nats).
        saturated: number of tokens whose largest gate probability is >= ``SATURATED_GATE``.
    """

    tokens: Tensor
    assigned: Tensor
    kept: Tensor
    importance: Tensor
    entropy: Tensor
    saturated: Tensor


class MoE(nn.Module):
    """Sparse mixture of ``num_experts`` two-layer MLPs; each token goes to its top ``k``.

    ``y = sum_{i in topk(h(x))} softmax(h(x)_topk)_i * expert_i(x)`` with the noisy gate
    ``h(x) = x W_g + b + N(0, 1) * softplus(x W_noise)`` (noise in training only: it
    spreads tokens over experts while the router is young). Each expert takes at most
    ``ceil(capacity_factor * tokens * k / num_experts)`` assignments per forward, first
    choices before second ones, in token order; an assignment past the capacity is
    dropped (its term is 0; put the layer in a residual block so the token still passes).

    After each forward, ``aux_loss`` holds ``balance_weight * E * sum_i f_i P_i``, with
    ``f_i`` the share of assignments routed to expert ``i`` and ``P_i`` its mean gate
    probability (the Switch/GShard importance x load loss: 1 for a uniform router, E
    when one expert takes all); add it to the training loss (:func:`moe_aux_loss`
    sums it over a model). ``last_routing`` holds that forward's :class:`RoutingStats`.

    Works on any ``[..., in_features]`` input (tokens = every leading position).

    Args:
        in_features: width of a token.
        out_features: output width (default ``in_features``).
        num_experts: experts (E).
        k: experts per token.
        hidden: hidden width of each expert (default ``4 * in_features``).
        capacity_factor: slack over an even split; None = no capacity (nothing dropped).
        noisy_gating: add the learned gate noise in training.
        balance_weight: weight of the load-balancing loss (0.01 in Switch).

    References:
        Shazeer et al. Outrageously large neural networks: the sparsely-gated
        mixture-of-experts layer. ICLR 2017.
        Lepikhin et al. GShard. ICLR 2021. Fedus et al. Switch Transformers. JMLR 2022.
    """

    def __init__(
        self, in_features: int, out_features: int | None = None, *, num_experts: int = 8, k: int = 2,
        hidden: int | None = None, capacity_factor: float | None = 1.25, noisy_gating: bool = True,
        balance_weight: float = 0.01,
    ) -> None:
        super().__init__()
        if not 1 <= k <= num_experts:
            raise ValueError(f"k must be in [1, num_experts={num_experts}], got {k}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be > 0 or None, got {capacity_factor}")
        out_features = out_features or in_features
        hidden = hidden or 4 * in_features
        self.in_features, self.out_features, self.num_experts, self.k = in_features, out_features, num_experts, k
        self.capacity_factor, self.noisy_gating, self.balance_weight = capacity_factor, noisy_gating, balance_weight
        self.gate = nn.Linear(in_features, num_experts)
        # the default (small random) weights route different tokens differently from the first
        # step; a zero gate would send every token to the same k experts until noise breaks ties
        nn.init.zeros_(self.gate.bias)
        self.noise = nn.Linear(in_features, num_experts, bias=False) if noisy_gating else None
        if self.noise is not None:
            nn.init.zeros_(self.noise.weight)  # std softplus(0) = 0.69 until learned
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))
            for _ in range(num_experts)
        )
        self.aux_loss: Tensor = torch.zeros(())
        self.last_routing: RoutingStats | None = None

    def capacity(self, tokens: int) -> int:
        """Assignments one expert may take in a forward of ``tokens`` tokens."""
        if self.capacity_factor is None:
            return tokens
        return max(1, math.ceil(self.capacity_factor * tokens * self.k / self.num_experts))

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        tokens, experts = flat.shape[0], self.num_experts
        logits = self.gate(flat)
        if self.noise is not None and self.training:
            logits = logits + torch.randn_like(logits) * F.softplus(self.noise(flat))
        probs = logits.softmax(dim=-1)
        top_logits, top_idx = logits.topk(self.k, dim=-1)
        weights = top_logits.softmax(dim=-1)
        # choice-major order: every token's first choice queues before any second choice
        expert_of = top_idx.t().reshape(-1)
        token_of = torch.arange(tokens, device=x.device).repeat(self.k)
        weight_of = weights.t().reshape(-1)
        onehot = F.one_hot(expert_of, experts)
        queue_pos = (onehot.cumsum(dim=0) * onehot).sum(dim=1) - 1
        keep = queue_pos < self.capacity(tokens)
        out = flat.new_zeros(tokens, self.out_features)
        order = torch.argsort(expert_of[keep], stable=True)
        kept_tokens, kept_experts, kept_weights = token_of[keep][order], expert_of[keep][order], weight_of[keep][order]
        counts = torch.bincount(kept_experts, minlength=experts)
        start = 0
        for e, count in enumerate(counts.tolist()):  # one host sync per forward, not per expert
            if count:
                rows = kept_tokens[start:start + count]
                out.index_add_(0, rows, kept_weights[start:start + count, None] * self.experts[e](flat[rows]))
                start += count
        assigned = onehot.sum(dim=0)
        load = assigned.float() / max(tokens * self.k, 1)
        self.aux_loss = self.balance_weight * experts * (load * probs.mean(dim=0)).sum()
        with torch.no_grad():
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
            self.last_routing = RoutingStats(
                tokens=torch.tensor(tokens, device=x.device), assigned=assigned, kept=counts,
                importance=probs.sum(dim=0).detach(), entropy=entropy,
                saturated=(probs.amax(dim=-1) >= SATURATED_GATE).sum(),
            )
        return out.reshape(*lead, self.out_features)


def moe_aux_loss(model: nn.Module) -> Tensor:
    """Sum of the ``aux_loss`` of every :class:`MoE` in ``model`` after its last forward (0 if none)."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MoE)]
    return torch.stack(losses).sum() if losses else torch.zeros(())


class WithAuxLoss(nn.Module):
    """``loss_fn(logits, y) + moe_aux_loss(model)`` in training, ``loss_fn(logits, y)`` in evaluation.

    For loops that take a ``loss_fn(logits, y)`` (``fit``): the balance loss of the model's
    MoE layers joins the training loss, and validation losses stay comparable with a
    model without MoE. The model is held by reference, not as a sub-module, so this loss
    has no parameters of its own.
    """

    def __init__(self, loss_fn: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self._model = [model]  # a list: not registered as a sub-module

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        loss = self.loss_fn(logits, target)
        model = self._model[0]
        return loss + moe_aux_loss(model).to(loss.device) if model.training else loss
