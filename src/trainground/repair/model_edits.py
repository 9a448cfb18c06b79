"""Model edits of training repair: swap a dead ReLU for LeakyReLU, re-initialise dead units.

Each edit is registered with :func:`~trainground.repair.plan.model_edit` and applied by
:func:`~trainground.repair.plan.prepare_model` to every model a repair round builds (after
the round's checkpoint weights, if it resumes from one, were loaded). Edits work on any
``nn.Module`` whose activations are modules (``nn.ReLU`` in an ``nn.Sequential``, as in
``MLP``, ``SmallCNN`` or a user's model): the action's ``target`` is the module name the
diagnosis reports (``dead_units`` names the activation module, e.g. ``"body.1"``).

A ReLU called functionally (``F.relu(x)`` / ``torch.relu`` inside ``forward``) is not a
module: the diagnosis cannot watch it (no ``dead_units`` finding names it) and no edit can
reach it. An edit whose target is missing, or is not the kind of module it edits, leaves the
model unchanged and says so in a ``RuntimeWarning`` (a repair round must not fail on it);
:func:`edit_applies` lets a loop check beforehand.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from trainground.repair.actions import Action
from trainground.repair.plan import model_edit

# Maas, Hannun, Ng (2013) use 0.01: small enough to keep ReLU's sparsity and scale, large
# enough that a unit with negative pre-activations still receives a gradient and can recover.
LEAKY_SLOPE = 0.01
# Modules whose output unit i is channel/feature i of the next activation (dim 1).
_PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def find_module(model: nn.Module, name: str) -> nn.Module | None:
    """The submodule called ``name`` (``"body.1"``; ``"model"`` or ``""`` is the model itself), or None."""
    if name in ("", "model"):
        return model
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` is (works in Sequential, ModuleList/Dict, attributes)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)  # nn.Sequential/ModuleList register children by their str index too


def producer_of(model: nn.Module, name: str) -> tuple[str, nn.Module] | None:
    """The last Linear/Conv registered before the module ``name`` (whose output units the
    activation passes on), in ``named_modules`` order; None when there is none."""
    last = None
    for module_name, module in model.named_modules():
        if module_name == name:
            return last
        if isinstance(module, _PRODUCERS):
            last = (module_name, module)
    return None


def norm_between(model: nn.Module, producer: str, name: str) -> nn.Module | None:
    """A normalisation layer registered between ``producer`` and ``name`` (Conv -> BatchNorm -> ReLU)."""
    inside, found = False, None
    for module_name, module in model.named_modules():
        if module_name == producer:
            inside = True
        elif module_name == name:
            return found
        elif inside and isinstance(module, _NORMS):
            found = module
    return None


def edit_applies(model: nn.Module, action: Action) -> bool:
    """Whether ``action`` can edit ``model`` (its target exists and has the right kind)."""
    module = find_module(model, str(action.target))
    if action.action == "swap_activation":
        return isinstance(module, nn.ReLU)
    if action.action == "reinit_units":
        return module is not None and producer_of(model, str(action.target)) is not None
    return False


def _skip(action: Action, why: str) -> None:
    warnings.warn(f"repair: {action.action} on {action.target!r} (policy {action.policy!r}) left the model "
                  f"unchanged: {why}", RuntimeWarning, stacklevel=3)


@model_edit("swap_activation")
def swap_activation(model: nn.Module, action: Action) -> nn.Module:
    """Replace the ``nn.ReLU`` module ``action.target`` by ``nn.LeakyReLU(LEAKY_SLOPE)``.

    No weights change (activations have none), so a model resumed from a checkpoint keeps
    every parameter. ``action.value`` must be ``"leaky_relu"`` (the only swap there is).

    References:
        Maas, Hannun, Ng. "Rectifier Nonlinearities Improve Neural Network Acoustic Models."
        ICML Workshop on Deep Learning for Audio, Speech and Language Processing, 2013.
    """
    if action.value != "leaky_relu":
        _skip(action, f"unknown activation {action.value!r} (known: 'leaky_relu')")
        return model
    module = find_module(model, str(action.target))
    if module is None:
        _skip(action, "no module of that name (a functional relu cannot be swapped)")
    elif isinstance(module, nn.LeakyReLU):
        pass  # already swapped (an earlier round): nothing to do
    elif not isinstance(module, nn.ReLU):
        _skip(action, f"it is a {type(module).__name__}, not an nn.ReLU")
    else:
        slope = float(action.evidence.get("negative_slope", LEAKY_SLOPE))
        replace_module(model, str(action.target), nn.LeakyReLU(slope, inplace=module.inplace))
    return model


def reinit_units_(producer: nn.Module, units: Sequence[int], *, generator: torch.Generator) -> None:
    """Re-draw the incoming weights and bias of output ``units`` of a Linear/Conv with PyTorch's
    default initialisation (``kaiming_uniform_(a=sqrt(5))``, bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``),
    in place; every other unit keeps its weights exactly."""
    weight = producer.weight
    fan_in = weight[0].numel()
    # kaiming_uniform_ with a = sqrt(5): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    bound = 1.0 / math.sqrt(fan_in)
    rows = torch.as_tensor(list(units), dtype=torch.long, device=weight.device)
    with torch.no_grad():
        fresh = (torch.rand((len(rows), *weight.shape[1:]), generator=generator) * 2 - 1) * bound
        weight[rows] = fresh.to(weight.device, weight.dtype)
        bias = getattr(producer, "bias", None)
        if bias is not None:
            fresh_bias = (torch.rand(len(rows), generator=generator) * 2 - 1) * bound
            bias[rows] = fresh_bias.to(bias.device, bias.dtype)


@model_edit("reinit_units")
def reinit_units(model: nn.Module, action: Action) -> nn.Module:
    """Re-initialise the units ``action.value`` (ids along dim 1 of the activation ``action.target``,
    or ``"all"``):
    the rows of the Linear/Conv that feeds the activation, and the affine parameters of a
    BatchNorm between them (weight 1, bias 0, the running statistics of those units reset).

    Seeded (``action.evidence["seed"]``, default 0), so the same plan builds the same model.
    """
    name = str(action.target)
    if find_module(model, name) is None:
        _skip(action, "no module of that name")
        return model
    found = producer_of(model, name)
    if found is None:
        _skip(action, "no Linear/Conv before it whose units it passes on")
        return model
    producer_name, producer = found
    out_units = producer.weight.shape[0]
    units = list(range(out_units)) if action.value == "all" else sorted({int(u) for u in (action.value or [])})
    if not units or units[-1] >= out_units or units[0] < 0:
        _skip(action, f"unit ids must lie in [0, {out_units}) of {producer_name}")
        return model
    generator = torch.Generator().manual_seed(int(action.evidence.get("seed", 0)))
    reinit_units_(producer, units, generator=generator)
    norm = norm_between(model, producer_name, name)
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        with torch.no_grad():
            if norm.affine:
                norm.weight[units] = 1.0
                norm.bias[units] = 0.0
            if norm.track_running_stats and norm.running_mean is not None:
                norm.running_mean[units] = 0.0
                norm.running_var[units] = 1.0
    return model
