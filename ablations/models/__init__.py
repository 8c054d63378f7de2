"""Model factory: architectures built from the factor tables, then initialised.

`ablations.config` validates names against the tables exported here, so this package must not
import `ablations.config` at import time (type hints only, under TYPE_CHECKING).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ablations.models.cnn import build_cnn
from ablations.models.compat import incompatibilities
from ablations.models.init import INITS, InitContext
from ablations.models.layers import ACTIVATIONS, NORMS
from ablations.models.mlp import build_mlp
from ablations.models.resnet import build_resnet
from ablations.models.rnn import build_gru, build_lstm
from ablations.models.transformer import build_transformer
from ablations.registry import Registry

if TYPE_CHECKING:
    from ablations.config import ModelConfig

# A builder returns the model with its classifier marked (init.mark_classifier), uninitialised.
Builder = Callable[["ModelConfig", tuple[int, ...], int], nn.Module]
ARCHITECTURES: Registry[Builder] = Registry("architecture")
ARCHITECTURES.register("mlp")(build_mlp)
ARCHITECTURES.register("cnn")(build_cnn)
ARCHITECTURES.register("resnet")(build_resnet)
ARCHITECTURES.register("lstm")(build_lstm)
ARCHITECTURES.register("gru")(build_gru)
ARCHITECTURES.register("transformer")(build_transformer)

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "INITS",
    "NORMS",
    "build_model",
    "count_parameters",
    "incompatibilities",
    "init_context",
]


def init_context(cfg: ModelConfig, batch: Tensor | None = None) -> InitContext:
    return InitContext(
        activation=cfg.activation,
        leaky_relu_slope=cfg.leaky_relu_slope,
        normal_std=cfg.normal_std,
        batch=batch,
        lsuv_tolerance=cfg.lsuv_tolerance,
        lsuv_max_iters=cfg.lsuv_max_iters,
    )


def build_model(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch: Tensor | None = None,
    chosen: Collection[str] = (),
) -> nn.Module:
    """The architecture `cfg.arch` for inputs of `input_shape` (no batch dim), initialised by `cfg.init`.

    `batch` is real training inputs, which data-dependent inits (lsuv) need; the model is moved to
    the batch's device so the init can run it there. A user's model (`arch` an import path) is
    built by ablations.plugins.user_model, which applies the `chosen` standard keys it does not take."""
    if ":" in cfg.arch:
        from ablations.plugins.user_model import build_user_model

        if batch is None:
            batch = torch.zeros(2, *input_shape)
        return build_user_model(cfg, tuple(input_shape), num_classes, batch, chosen).model
    model = ARCHITECTURES[cfg.arch](cfg, tuple(input_shape), num_classes)
    if batch is not None:
        model = model.to(batch.device)
    INITS[cfg.init](model, init_context(cfg, batch))
    if cfg.zero_init_residual:
        # After the init, so a data-dependent init never sees (or rescales) the zeroed branches.
        for module in model.modules():
            if hasattr(module, "zero_init_residual_"):
                module.zero_init_residual_()
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
