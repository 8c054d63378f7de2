"""Weight initialisation levels, applied to every nn.Linear / nn.Conv* weight of a model.

Hidden layers get the gain that matches the model's activation; the classifier gets gain 1
("linear"), because it feeds the softmax, not a nonlinearity. Model builders say which layer is
the classifier by marking it with `mark_classifier` (it sets `module.is_classifier = True`);
every init except `default` refuses a model with no marked classifier rather than guess.
Biases are set to zero, except under `default`, which leaves PyTorch's own init untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from torch import Tensor, nn

from ablations.models.layers import LEAKY_RELU_SLOPE
from ablations.registry import Registry

InitFn = Callable[[nn.Module, str], None]
INITS: Registry[InitFn] = Registry("init")

CLASSIFIER_ATTR = "is_classifier"
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# The name torch.nn.init.calculate_gain knows each activation by. It has no entry for elu or
# gelu; both are the identity for large x and ~0 for very negative x, so we use the relu gain.
# selu gets gain 1: Klambauer et al. 2017 derive self-normalisation for LeCun normal weights
# (std 1/sqrt(fan_in)); PyTorch's calculate_gain("selu") = 3/4 is not what the paper means.
_GAIN_NAME = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "selu": "linear",
    "sigmoid": "sigmoid",
    "elu": "relu",
    "gelu": "relu",
}


def mark_classifier(layer: nn.Module) -> nn.Module:
    """Mark `layer` as the model's final classifier, so inits give it gain 1."""
    setattr(layer, CLASSIFIER_ATTR, True)
    return layer


def activation_gain(activation: str) -> float:
    """The gain for a layer that feeds `activation`."""
    if activation not in _GAIN_NAME:
        raise KeyError(
            f"no init gain for activation {activation!r}; known: {', '.join(_GAIN_NAME)} "
            f"(a new activation needs an entry in _GAIN_NAME in {__name__})"
        )
    name = _GAIN_NAME[activation]
    return nn.init.calculate_gain(name, LEAKY_RELU_SLOPE if name == "leaky_relu" else None)


def _weighted_layers(model: nn.Module, activation: str) -> Iterator[tuple[nn.Module, float]]:
    """Each Linear / Conv layer of `model` with the gain its weight should get."""
    layers = [m for m in model.modules() if isinstance(m, _WEIGHTED)]
    if not any(getattr(m, CLASSIFIER_ATTR, False) for m in layers):
        raise ValueError("the model has no layer marked as classifier; build it with mark_classifier(...)")
    hidden = activation_gain(activation)
    for layer in layers:
        yield layer, 1.0 if getattr(layer, CLASSIFIER_ATTR, False) else hidden


def _apply(model: nn.Module, activation: str, init_weight: Callable[[Tensor, float], None]) -> None:
    for layer, gain in _weighted_layers(model, activation):
        init_weight(layer.weight, gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


@INITS.register("default")
def default_init(model: nn.Module, activation: str) -> None:
    """PyTorch's own init, untouched: uniform(+-1/sqrt(fan_in)) (kaiming_uniform, a=sqrt(5); He et al. 2015)."""


@INITS.register("xavier")
def xavier_init(model: nn.Module, activation: str) -> None:
    """Glorot & Bengio 2010, normal variant: std = gain * sqrt(2 / (fan_in + fan_out))."""
    _apply(model, activation, lambda w, gain: nn.init.xavier_normal_(w, gain=gain))


@INITS.register("kaiming")
def kaiming_init(model: nn.Module, activation: str) -> None:
    """He et al. 2015, normal, fan_in mode: std = gain / sqrt(fan_in)."""

    def init_weight(w: Tensor, gain: float) -> None:
        # w[0] is one output unit's weights: in_features, or in_channels/groups x kernel for conv.
        nn.init.normal_(w, 0.0, gain / math.sqrt(w[0].numel()))

    _apply(model, activation, init_weight)


@INITS.register("orthogonal")
def orthogonal_init(model: nn.Module, activation: str) -> None:
    """Saxe, McClelland & Ganguli 2014: a random orthogonal matrix times the gain."""
    _apply(model, activation, lambda w, gain: nn.init.orthogonal_(w, gain=gain))


@INITS.register("normal")
def normal_init(model: nn.Module, activation: str) -> None:
    """The classic fixed "small random" init N(0, 0.01^2), no gain (e.g. Krizhevsky et al. 2012)."""
    _apply(model, activation, lambda w, gain: nn.init.normal_(w, 0.0, 0.01))
