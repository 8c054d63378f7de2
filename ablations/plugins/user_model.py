"""Your model by import path: `model.arch: "package.module:callable"` (a function or a class that
returns an `nn.Module` of logits (N, num_classes)).

The callable gets `model.args` as keyword arguments, plus each standard key its signature names:
`norm`, `activation`, `dropout`, `depth`, `width`, `init` (the level's name or value: build it
yourself, e.g. with `ablations.layers`) when the space chooses it or the parameter has no default,
and `num_classes`, `input_shape`, `in_channels` (from the data). A builder with `**kwargs` also
gets `num_classes`, as torchvision's and timm's do.

A standard key the space chooses (a factor, or a `model:` value other than the default) that the
callable does not take is applied to the built model instead: `norm`, `activation` and `dropout`
by swapping layers (ablations.plugins.swap), `init` by re-initialising every Linear/Conv as for the
built-in models. `depth` and `width` cannot be swapped in; the validator refuses them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ablations.models.init import CLASSIFIER_ATTR, INITS, InitContext, weighted_layers
from ablations.models.layers import LayerOptions
from ablations.plugins.imports import PluginError, call_with, parameters, required, resolve
from ablations.plugins.swap import (
    ACTIVATION_TYPES,
    SwapReport,
    functional_activations,
    mark_activations,
    quiet_forward,
    set_dropout,
    swap_activations,
    swap_norms,
)

if TYPE_CHECKING:
    from ablations.config import ModelConfig

SWAPPABLE = ("norm", "activation", "dropout")
PASSED = ("norm", "activation", "dropout", "depth", "width", "init")
# torch's activation classes by the registry names whose init gain they share.
_GAIN_OF = {
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu", nn.ELU: "elu", nn.SELU: "selu",
    nn.GELU: "gelu", nn.SiLU: "silu", nn.Tanh: "tanh",
}  # fmt: skip


@dataclass
class BuiltModel:
    model: nn.Module
    passed: dict[str, Any]  # the keyword arguments the callable was called with
    swaps: SwapReport = field(default_factory=SwapReport)


def signature_of(arch: str) -> tuple[set[str], bool]:
    return parameters(resolve(arch, "model.arch"))


def build_user_model(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch: Tensor,
    chosen: Collection[str],
) -> BuiltModel:
    """Build, swap the chosen standard keys the callable does not take, initialise, and check that
    the output is (N, num_classes) logits. `batch` is a real input batch (shapes, LSUV, the check)."""
    fn = resolve(cfg.arch, "model.arch")
    names, var_kw = parameters(fn)
    # A standard key goes to the callable when the space chooses it, or when the callable requires
    # it (then the config's value, default or not); else the callable's own default stands.
    needed = required(fn)
    offered: dict[str, Any] = {k: getattr(cfg, k) for k in PASSED if k in chosen or k in needed}
    offered.update(num_classes=num_classes, input_shape=tuple(input_shape), in_channels=input_shape[0])
    passed = {k: v for k, v in offered.items() if k in names}
    given = dict(cfg.args)
    if var_kw and "num_classes" not in given:
        given = {"num_classes": num_classes, **given}  # the convention of torchvision's and timm's builders
        passed["num_classes"] = num_classes
    model = call_with(fn, passed, given, "model")
    if not isinstance(model, nn.Module):
        raise PluginError(f"model.arch: {cfg.arch} returned {type(model).__name__}, not a torch.nn.Module")
    model = model.to(batch.device)
    built = BuiltModel(model, {**passed, **cfg.args})
    opts = LayerOptions.of(cfg)
    apply = {k for k in SWAPPABLE if k in chosen and k not in names}
    if "norm" in apply:
        swap_norms(model, cfg.norm, opts, batch, built.swaps)
    if "activation" in apply:
        swap_activations(model, cfg.activation, opts, built.swaps)
    if "dropout" in apply:
        set_dropout(model, cfg.dropout, built.swaps)
    model.to(batch.device)  # swapped-in layers were made on the CPU
    mark_activations(model)
    check_output(model, batch, num_classes, cfg.arch)
    if "init" not in names and cfg.init != "default":
        _mark_classifier(model, batch)
        context = InitContext(
            activation=_gain_activation(model, cfg, "activation" in apply),
            leaky_relu_slope=cfg.leaky_relu_slope,
            normal_std=cfg.normal_std,
            batch=batch,
            lsuv_tolerance=cfg.lsuv_tolerance,
            lsuv_max_iters=cfg.lsuv_max_iters,
        )
        INITS[cfg.init](model, context)
    return built


def check_output(model: nn.Module, batch: Tensor, num_classes: int, arch: str) -> None:
    out = quiet_forward(model, batch[:2])
    if not isinstance(out, Tensor):
        raise PluginError(
            f"model.arch: {arch} returns {type(out).__name__} from forward(); return the logits tensor "
            f"(N, {num_classes})"
        )
    if tuple(out.shape) != (len(batch[:2]), num_classes):
        raise PluginError(
            f"model.arch: {arch} outputs shape {tuple(out.shape)} for a batch of {len(batch[:2])}; the data has "
            f"{num_classes} classes, so it must output ({len(batch[:2])}, {num_classes}) (pass num_classes to it)"
        )


def _mark_classifier(model: nn.Module, batch: Tensor) -> None:
    """The inits give the layer that feeds the softmax gain 1: the last Linear/Conv to run."""
    layers = weighted_layers(model)
    if any(getattr(m, CLASSIFIER_ATTR, False) for m in layers):
        return  # the builder marked it itself (ablations.layers.mark_classifier)
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda m, a, o: order.append(m)) for m in layers]
    try:
        quiet_forward(model, batch[:2])
    finally:
        for h in handles:
            h.remove()
    if order:
        setattr(order[-1], CLASSIFIER_ATTR, True)


def _gain_activation(model: nn.Module, cfg: ModelConfig, swapped: bool) -> str:
    """The activation whose gain the hidden layers get: the swapped-in level, else the model's
    own activation when it uses one kind, else none (gain 1)."""
    if swapped:
        return cfg.activation
    kinds = Counter(type(m) for m in model.modules() if isinstance(m, ACTIVATION_TYPES))
    if len(kinds) == 1:
        return _GAIN_OF.get(next(iter(kinds)), "linear")
    return "linear"


def swap_summary(built: BuiltModel, batch: Tensor, chosen: Collection[str], names: Collection[str]) -> list[str]:
    """Lines for `ablate check`: what was swapped, and warnings for what could not be."""
    lines = built.swaps.lines()
    for factor in SWAPPABLE:
        if factor in chosen and factor not in names and built.swaps.swapped_nothing(factor):
            lines.append(f"warning: {factor} swapped nothing (the model has no such layer)")
    calls = functional_activations(built.model, batch)
    if calls and "activation" in chosen and "activation" not in names:
        text = ", ".join(f"{name} ×{n}" for name, n in calls.items())
        lines.append(f"warning: functional activations in forward() are not swapped: {text}")
    return lines
