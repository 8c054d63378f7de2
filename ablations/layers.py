"""The public layer factories: build a factor's level inside your own model.

A model builder that takes `norm`, `activation` or `dropout` receives the level's name (e.g.
`"group"`, `"gelu"`, `0.1`) and can make the layer the suite means by it:

    from ablations import layers

    def build(norm: str, activation: str, dropout: float, num_classes: int):
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), layers.norm(norm, 32, spatial_dims=2), layers.activation(activation),
            layers.dropout(dropout, activation), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
        )

Levels are the registered names of `ablate check` and the README (norms: none, batch, layer,
instance, group; activations: relu, gelu, ...). These functions are a stable API: their arguments
only ever gain optional keywords.
"""

from __future__ import annotations

from torch import nn

from ablations.models.init import mark_classifier
from ablations.models.layers import ACTIVATIONS, NORMS, LayerOptions, make_activation, make_dropout

__all__ = ["activation", "activation_levels", "dropout", "mark_classifier", "norm", "norm_levels"]


def norm(level: str, channels: int, spatial_dims: int = 0, *, groups: int = 32) -> nn.Module:
    """The norm `level` for `channels` features: `spatial_dims` 0 for (N, C) vectors, 1, 2 or 3 for
    (N, C, L), (N, C, H, W), (N, C, D, H, W) maps. `groups` is group norm's G (the largest divisor
    of `channels` not above it is used). `none` gives an Identity."""
    return NORMS[level](channels, spatial_dims, LayerOptions(groups=groups))


def activation(level: str, *, leaky_relu_slope: float = 0.01) -> nn.Module:
    """The activation `level` as a module, marked for the suite's per-layer diagnostics."""
    return make_activation(level, LayerOptions(leaky_relu_slope=leaky_relu_slope))


def dropout(p: float, activation: str = "relu", *, channels: bool = False, alpha_dropout: bool = True) -> nn.Module:
    """Dropout with probability `p` for a layer followed by `activation`: AlphaDropout after SELU
    (unless `alpha_dropout` is False), whole channels with `channels=True`; Identity when p is 0."""
    return make_dropout(p, activation, LayerOptions(alpha_dropout=alpha_dropout), channels=channels)


def norm_levels() -> list[str]:
    return NORMS.names()


def activation_levels() -> list[str]:
    return ACTIVATIONS.names()
