"""Attributions of a classifier's logit to its inputs, through Captum.

One function, :func:`attribute`, for every method, so the run-level code and the sanity
checks never branch on the method:

- ``integrated_gradients`` (default): path integral of the gradient from a baseline to
  the input; attributions sum to the logit's change from the baseline (completeness).
- ``saliency``: the gradient itself (signed here, so it can be compared with the others).
- ``kernel_shap``, ``lime``: model-agnostic perturbation methods, for tables (one
  feature = one interpretable unit; on images they would need a segmentation).

The baseline is the mean training input for tables (an attribution says how far this
sample's feature moves the logit from an average sample's) and an all-zero image for
images (the usual black baseline).

References:
    Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017.
    Simonyan et al., "Deep Inside Convolutional Networks", ICLR workshop 2014.
    Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
    Ribeiro et al., "Why Should I Trust You?", KDD 2016.
    Kokhlikyan et al., "Captum: A unified and generic model interpretability library for PyTorch", 2020.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from trainground.errors import ConfigError

Method = Literal["integrated_gradients", "saliency", "kernel_shap", "lime"]
METHODS: tuple[str, ...] = ("integrated_gradients", "saliency", "kernel_shap", "lime")
TABLE_ONLY = ("kernel_shap", "lime")


def attribute(
    model: nn.Module, inputs: Tensor, target: Tensor | int, *, method: Method = "integrated_gradients",
    baseline: Tensor | None = None, steps: int = 32, samples: int = 200, seed: int = 0,
) -> Tensor:
    """Attribution of the ``target`` logit to each input value, same shape as ``inputs``.

    Args:
        model: the classifier (put in eval mode here; its mode is restored).
        inputs: a batch ``[N, F]`` (table) or ``[N, C, H, W]`` (images).
        target: class per sample (``[N]``) or one class for all.
        method: see the module docstring.
        baseline: the reference input (``[F]`` / ``[C, H, W]`` or a batch); zeros when None.
        steps: integration steps of Integrated Gradients.
        samples: perturbed samples per input of KernelSHAP and LIME.
        seed: seeds the perturbations of KernelSHAP and LIME.
    """
    try:
        from captum import attr
    except ImportError as err:  # pragma: no cover - the [explain] extra
        raise ConfigError(f"attributions need captum ({err}); pip install 'trainground[explain]'") from None
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r}; known: {', '.join(METHODS)}")
    if method in TABLE_ONLY and inputs.ndim != 2:
        raise ConfigError(f"{method} explains tables ([N, F] features); use integrated_gradients or saliency "
                          "for images")
    was_training = model.training
    model.eval()
    inputs = inputs.detach().float()
    if baseline is None:
        baseline = torch.zeros_like(inputs)
    elif baseline.shape == inputs.shape[1:]:
        baseline = baseline.expand_as(inputs)
    baseline = baseline.to(inputs)
    try:
        if method == "integrated_gradients":
            return attr.IntegratedGradients(model).attribute(inputs, baselines=baseline, target=target,
                                                             n_steps=steps, internal_batch_size=1024).detach()
        if method == "saliency":
            return attr.Saliency(model).attribute(inputs.clone().requires_grad_(True), target=target,
                                                  abs=False).detach()
        torch.manual_seed(seed)
        if method == "kernel_shap":
            return attr.KernelShap(model).attribute(inputs, baselines=baseline, target=target,
                                                    n_samples=samples).detach()
        return attr.Lime(model).attribute(inputs, baselines=baseline, target=target, n_samples=samples).detach()
    finally:
        model.train(was_training)


def top_features(row: Tensor, names: list[str], k: int = 5) -> list[dict[str, float | str]]:
    """The ``k`` largest attributions by magnitude, signed, as ``{"feature", "value"}``."""
    order = torch.argsort(row.abs(), descending=True)[:k]
    return [{"feature": names[int(i)], "value": float(row[int(i)])} for i in order]
