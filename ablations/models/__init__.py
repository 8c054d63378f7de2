"""Model factory: architectures built from the factor tables, then initialised.

`ablations.config` validates names against the tables exported here, so this package must not
import `ablations.config` at import time (type hints only, under TYPE_CHECKING).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from ablations.models.init import INITS
from ablations.models.layers import ACTIVATIONS, NORMS
from ablations.models.mlp import build_mlp
from ablations.registry import Registry

if TYPE_CHECKING:
    from ablations.config import ModelConfig

# A builder returns the model with its classifier marked (init.mark_classifier), uninitialised.
Builder = Callable[["ModelConfig", tuple[int, ...], int], nn.Module]
ARCHITECTURES: Registry[Builder] = Registry("architecture")
ARCHITECTURES.register("mlp")(build_mlp)

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "INITS", "NORMS", "build_model", "count_parameters"]


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The architecture `cfg.arch` for inputs of `input_shape` (no batch dim), initialised by `cfg.init`."""
    model = ARCHITECTURES[cfg.arch](cfg, tuple(input_shape), num_classes)
    INITS[cfg.init](model, cfg.activation)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
