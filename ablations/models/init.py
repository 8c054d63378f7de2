"""Weight initialisation levels, applied to every nn.Linear / nn.Conv* weight of a model.

Hidden layers get the gain that matches the model's activation; the classifier gets gain 1
("linear"), because it feeds the softmax, not a nonlinearity. Model builders say which layer is
the classifier by marking it with `mark_classifier` (it sets `module.is_classifier = True`);
every init except `default` refuses a model with no marked classifier rather than guess.
Biases are set to zero, except under `default`, which leaves PyTorch's own init untouched.

An init receives an `InitContext`: the activation, the options of the config, and a batch of
real training data, which data-dependent inits (LSUV) need and the others ignore.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ablations.registry import Registry


@dataclass(frozen=True)
class InitContext:
    activation: str = "relu"
    leaky_relu_slope: float = 0.01
    normal_std: float = 0.01
    batch: Tensor | None = None  # real inputs, (N, *input_shape): only LSUV reads it
    lsuv_tolerance: float = 0.1  # Mishkin & Matas 2016: Tol_var = 0.1
    lsuv_max_iters: int = 10  # and T_max = 10


InitFn = Callable[[nn.Module, InitContext], None]
INITS: Registry[InitFn] = Registry("init")

CLASSIFIER_ATTR = "is_classifier"
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# The name torch.nn.init.calculate_gain knows each activation by. It has no entry for elu, gelu
# or silu; all three are the identity for large x and ~0 for very negative x, so they get the
# relu gain. prelu starts at slope 0.25: the leaky_relu gain for that slope (He et al. 2015, eq. 15).
# selu gets gain 1: Klambauer et al. 2017 derive self-normalisation for LeCun normal weights
# (std 1/sqrt(fan_in)); PyTorch's calculate_gain("selu") = 3/4 is not what the paper means.
_GAIN_NAME = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "prelu": "leaky_relu",
    "tanh": "tanh",
    "selu": "linear",
    "sigmoid": "sigmoid",
    "elu": "relu",
    "gelu": "relu",
    "silu": "relu",
    "linear": "linear",  # a user's model with no (or mixed) activations: no gain
}
PRELU_INIT_SLOPE = 0.25


def mark_classifier(layer: nn.Module) -> nn.Module:
    """Mark `layer` as the model's final classifier, so inits give it gain 1."""
    setattr(layer, CLASSIFIER_ATTR, True)
    return layer


def activation_gain(activation: str, leaky_relu_slope: float = 0.01) -> float:
    """The gain for a layer that feeds `activation`."""
    if activation not in _GAIN_NAME:
        raise KeyError(
            f"no init gain for activation {activation!r}; known: {', '.join(_GAIN_NAME)} "
            f"(a new activation needs an entry in _GAIN_NAME in {__name__})"
        )
    name = _GAIN_NAME[activation]
    slope = PRELU_INIT_SLOPE if activation == "prelu" else leaky_relu_slope
    return nn.init.calculate_gain(name, slope if name == "leaky_relu" else None)


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Every Linear / Conv layer, in module order (input to output for our builders)."""
    return [m for m in model.modules() if isinstance(m, WEIGHTED)]


def _with_gains(model: nn.Module, ctx: InitContext) -> Iterator[tuple[nn.Module, float]]:
    """Each Linear / Conv layer of `model` with the gain its weight should get."""
    layers = weighted_layers(model)
    if not any(getattr(m, CLASSIFIER_ATTR, False) for m in layers):
        raise ValueError("the model has no layer marked as classifier; build it with mark_classifier(...)")
    hidden = activation_gain(ctx.activation, ctx.leaky_relu_slope)
    for layer in layers:
        yield layer, 1.0 if getattr(layer, CLASSIFIER_ATTR, False) else hidden


def _apply(model: nn.Module, ctx: InitContext, init_weight: Callable[[Tensor, float], None]) -> None:
    with torch.no_grad():
        for layer, gain in _with_gains(model, ctx):
            init_weight(layer.weight, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def fan_in(w: Tensor) -> int:
    # w[0] is one output unit's weights: in_features, or in_channels/groups x kernel for conv.
    return w[0].numel()


@INITS.register("default")
def default_init(model: nn.Module, ctx: InitContext) -> None:
    """PyTorch's own init, untouched: uniform(+-1/sqrt(fan_in)) (kaiming_uniform, a=sqrt(5); He et al. 2015)."""


@INITS.register("zeros")
def zeros_init(model: nn.Module, ctx: InitContext) -> None:
    """All weights and biases 0: the symmetric start that cannot learn distinct units, the classic
    counter-example (Goodfellow, Bengio & Courville 2016, section 8.4; Rumelhart et al. 1986)."""
    _apply(model, ctx, lambda w, gain: nn.init.zeros_(w))


@INITS.register("normal")
def normal_init(model: nn.Module, ctx: InitContext) -> None:
    """The fixed "small random" init N(0, std^2), std = model.normal_std (0.01), no gain
    (e.g. Krizhevsky et al. 2012; the failure case of Glorot & Bengio 2010)."""
    _apply(model, ctx, lambda w, gain: nn.init.normal_(w, 0.0, ctx.normal_std))


# Xavier takes no activation gain: Glorot & Bengio 2010 derive it for units linear around 0
# (tanh, softsign), and He et al. 2015's Xavier-vs-Kaiming comparison at 30 ReLU layers is exactly
# sqrt(1/n)-like scaling against the relu gain sqrt(2); a relu gain here would make the two equal
# on square layers and erase that comparison.
def xavier_normal(model: nn.Module, ctx: InitContext) -> None:
    """Glorot & Bengio 2010, normal variant: std = sqrt(2 / (fan_in + fan_out)), no activation gain."""
    _apply(model, ctx, lambda w, gain: nn.init.xavier_normal_(w))


INITS.register("xavier_normal")(xavier_normal)
INITS.register("xavier")(xavier_normal)  # the short name of the normal variant


@INITS.register("xavier_uniform")
def xavier_uniform(model: nn.Module, ctx: InitContext) -> None:
    """Glorot & Bengio 2010, eq. 16: uniform(+-sqrt(6 / (fan_in + fan_out))), no activation gain."""
    _apply(model, ctx, lambda w, gain: nn.init.xavier_uniform_(w))


def kaiming_normal(model: nn.Module, ctx: InitContext) -> None:
    """He et al. 2015, normal, fan_in mode: std = gain / sqrt(fan_in)."""
    _apply(model, ctx, lambda w, gain: nn.init.normal_(w, 0.0, gain / math.sqrt(fan_in(w))))


INITS.register("kaiming_normal")(kaiming_normal)
INITS.register("kaiming")(kaiming_normal)  # the short name of the normal variant


@INITS.register("kaiming_uniform")
def kaiming_uniform(model: nn.Module, ctx: InitContext) -> None:
    """He et al. 2015, uniform, fan_in mode: uniform(+-gain * sqrt(3 / fan_in)), the same std as kaiming_normal."""
    _apply(
        model,
        ctx,
        lambda w, gain: nn.init.uniform_(w, -gain * math.sqrt(3 / fan_in(w)), gain * math.sqrt(3 / fan_in(w))),
    )


@INITS.register("orthogonal")
def orthogonal_init(model: nn.Module, ctx: InitContext) -> None:
    """Saxe, McClelland & Ganguli 2014: a random orthogonal matrix times the gain."""
    _apply(model, ctx, lambda w, gain: nn.init.orthogonal_(w, gain=gain))


class _Captured(Exception):
    """Stops a forward pass once the layer being scaled has produced its output."""


def layer_output(model: nn.Module, layer: nn.Module, batch: Tensor) -> Tensor:
    """The output of `layer` when `model` runs on `batch`; the rest of the forward is skipped."""
    out: list[Tensor] = []

    def hook(module: nn.Module, args: object, output: Tensor) -> None:
        out.append(output)
        raise _Captured

    handle = layer.register_forward_hook(hook)
    try:
        model(batch)
    except _Captured:
        pass
    finally:
        handle.remove()
    return out[0]


@INITS.register("lsuv")
def lsuv_init(model: nn.Module, ctx: InitContext) -> None:
    """Layer-sequential unit-variance init (Mishkin & Matas 2016, Algorithm 1): orthonormal weights,
    then, layer by layer from the input, divide the weights by the std of the layer's output on a
    batch of real data until that variance is 1 within `lsuv_tolerance` or `lsuv_max_iters` passes."""
    if ctx.batch is None:
        raise ValueError("lsuv needs a batch of real data: build_model(cfg, shape, classes, batch)")
    _apply(model, ctx, lambda w, gain: nn.init.orthogonal_(w))
    # Eval mode: dropout off and batch norm (fresh running stats: the identity) untouched, so the
    # variance measured is the layer's own and no buffer or random stream is changed.
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for layer in weighted_layers(model):
            for _ in range(ctx.lsuv_max_iters):
                var = layer_output(model, layer, ctx.batch).var().item()
                if abs(var - 1.0) < ctx.lsuv_tolerance or not math.isfinite(var) or var < 1e-12:
                    break  # done, or a dead layer that no scaling can bring to 1
                layer.weight.div_(math.sqrt(var))
    model.train(was_training)
