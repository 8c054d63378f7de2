"""Apply a factor level to a model that was not built for it, by swapping its layers.

`norm` replaces every normalization layer with the level's layer for the same channels (`none`: an
Identity); `activation` replaces every activation module; `dropout` sets p of every dropout layer.
Functional calls in a model's forward (F.relu, torch.tanh) are not modules and cannot be swapped;
`functional_activations` counts them so `ablate check` can say so.

Where a layer's channels sit is read from a forward pass on a real batch: (N, C, *spatial) maps to
the level's layer for C channels and that many spatial dims; a LayerNorm over the last dim of a
longer input (a Transformer's (N, T, C) tokens) normalizes each position on its own, so its
replacement sees each position as one sample of C features (batch norm then pools the positions
of the batch, as in Shen et al. 2020's study of batch norm in Transformers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ablations.models.layers import NORMS, LayerOptions, make_activation

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
# Hidden-unit nonlinearities. Sigmoid and Hardsigmoid are left alone: in modern nets they are gates
# (squeeze-and-excitation, LSTM-style cells), and a gate swapped for ReLU would change what the
# model computes, not which activation it uses.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Tanh,
)
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
_FUNCTIONAL = {
    torch.relu, torch.relu_, torch.tanh, torch.selu,
    nn.functional.relu, nn.functional.relu_, nn.functional.relu6, nn.functional.leaky_relu,
    nn.functional.elu, nn.functional.selu, nn.functional.gelu, nn.functional.silu, nn.functional.mish,
    nn.functional.softplus, nn.functional.hardswish, nn.functional.tanh, torch.Tensor.relu, torch.Tensor.tanh,
}  # fmt: skip


@dataclass
class SwapReport:
    """What was changed, as "count old → new" lines for `ablate check`, plus what could not be."""

    changes: dict[str, Counter] = field(default_factory=dict)  # factor -> Counter of "Old → New"
    functional: Counter = field(default_factory=Counter)  # functional activation calls in forward()

    def add(self, factor: str, change: str) -> None:
        self.changes.setdefault(factor, Counter())[change] += 1

    def lines(self) -> list[str]:
        return [f"{n} {change}" for counter in self.changes.values() for change, n in counter.items()]

    def swapped_nothing(self, factor: str) -> bool:
        return not self.changes.get(factor)


LAST_DIM_NORMS: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.LayerNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


class PerPosition(nn.Module):
    """Applies a feature-vector norm to each position of a channels-last (N, ..., C) input."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _named_children_of_type(model: nn.Module, types: tuple[type[nn.Module], ...]) -> Iterator[tuple[nn.Module, str]]:
    """(parent, attribute name) of every submodule of one of `types`, parents first."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, types):
                yield parent, name


def quiet_forward(model: nn.Module, batch: Tensor) -> object:
    """One forward pass that leaves no trace: eval mode, no gradients, random streams forked."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng():
            return model(batch)
    finally:
        model.train(was_training)


def input_shapes(model: nn.Module, batch: Tensor, types: tuple[type[nn.Module], ...]) -> dict[int, torch.Size]:
    """The input shape each module of `types` sees on `batch` (by id), from one forward pass."""
    shapes: dict[int, torch.Size] = {}

    def hook(module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], Tensor):
            shapes.setdefault(id(module), args[0].shape)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, types)]
    try:
        quiet_forward(model, batch)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _describe(module: nn.Module) -> str:
    if isinstance(module, PerPosition):
        return f"{_describe(module.inner)} per position"
    if isinstance(module, nn.GroupNorm):
        return f"GroupNorm({module.num_groups})"
    if isinstance(module, nn.Identity):
        return "Identity"
    return type(module).__name__


def _norm_layout(module: nn.Module, shape: torch.Size | None) -> tuple[int, int, bool]:
    """(channels, spatial dims, per position) of a norm layer, from its input shape when seen."""
    if isinstance(module, (nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))):
        normalized = tuple(module.normalized_shape)
        if len(normalized) == 1:
            return normalized[0], 0, shape is not None and len(shape) > 2
        return normalized[0], len(normalized) - 1, False  # (C, H, W): a whole feature map per sample
    channels = getattr(module, "num_features", None) or getattr(module, "num_channels", None)
    spatial = len(shape) - 2 if shape is not None else {nn.BatchNorm3d: 3, nn.InstanceNorm3d: 3}.get(type(module), 2)
    if isinstance(module, nn.BatchNorm1d) and shape is None:
        spatial = 0
    return int(channels), max(spatial, 0), False


def swap_norms(model: nn.Module, level: str, opts: LayerOptions, batch: Tensor, report: SwapReport) -> None:
    if any(isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)) for m in model.modules()):
        # torch's fused inference path for these layers computes LayerNorm itself from the norm's
        # weights (and reads its `eps`): with another norm swapped in it must be off (process-wide).
        torch.backends.mha.set_fastpath_enabled(False)
    shapes = input_shapes(model, batch, NORM_TYPES)
    for parent, name in list(_named_children_of_type(model, NORM_TYPES)):
        old = getattr(parent, name)
        channels, spatial, per_position = _norm_layout(old, shapes.get(id(old)))
        new = NORMS[level](channels, spatial, opts)
        if per_position and not isinstance(new, LAST_DIM_NORMS):
            new = PerPosition(new)  # batch/group norm read channels at dim 1: one position = one sample
        setattr(parent, name, new)
        report.add("norm", f"{type(old).__name__} → {_describe(new)}")


def swap_activations(model: nn.Module, level: str, opts: LayerOptions, report: SwapReport) -> None:
    for parent, name in list(_named_children_of_type(model, ACTIVATION_TYPES)):
        old = getattr(parent, name)
        new = make_activation(level, opts)
        setattr(parent, name, new)
        report.add("activation", f"{type(old).__name__} → {type(new).__name__}")


def set_dropout(model: nn.Module, p: float, report: SwapReport) -> None:
    for module in model.modules():
        if isinstance(module, DROPOUT_TYPES):
            report.add("dropout", f"{type(module).__name__}(p={module.p:g}) → p={p:g}")
            module.p = p


def mark_activations(model: nn.Module) -> None:
    """Let the per-layer diagnostics see every activation module, swapped or the model's own. Their
    input is the pre-activation, which an in-place op would overwrite before the hook reads it;
    out-of-place gives the same numbers."""
    for module in model.modules():
        if isinstance(module, ACTIVATION_TYPES):
            module.is_activation = True
            if getattr(module, "inplace", False):
                module.inplace = False


def functional_activations(model: nn.Module, batch: Tensor) -> Counter:
    """Activation functions called in forward() outside an activation module: they cannot be swapped."""
    inside = [0]
    calls: Counter = Counter()

    class Count(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            if func in _FUNCTIONAL and not inside[0]:
                calls[getattr(func, "__name__", str(func))] += 1
            return func(*args, **(kwargs or {}))

    def enter(module: nn.Module, args: tuple) -> None:
        inside[0] += 1

    def leave(module: nn.Module, args: tuple, out: object) -> None:
        inside[0] -= 1

    modules = [m for m in model.modules() if isinstance(m, (*ACTIVATION_TYPES, nn.Sigmoid, nn.Hardsigmoid))]
    handles = [m.register_forward_pre_hook(enter) for m in modules]
    handles += [m.register_forward_hook(leave) for m in modules]
    try:
        with Count():
            quiet_forward(model, batch)
    finally:
        for h in handles:
            h.remove()
    return calls
