"""A multilayer perceptron whose hidden blocks are assembled from the factor tables, plain or residual."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ablations.models.init import mark_classifier
from ablations.models.layers import NORMS, LayerOptions, make_activation, make_dropout, wants_bias

if TYPE_CHECKING:  # ablations.config imports this package, so only type checkers may import it back
    from ablations.config import ModelConfig


class MLPBlock(nn.Sequential):
    """One hidden layer: Linear -> norm -> activation -> dropout; with `residual`, the activation
    takes x + norm(linear(x)) instead, as in He et al. 2015's blocks (y = act(x + F(x))), so the plain
    and residual nets have exactly the same layers and parameters.

    A Sequential, so that the plain block costs no module call of its own (a few microseconds
    per block and step, which on a small MLP is several percent of the step)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        norm: str,
        activation: str,
        dropout: float,
        residual: bool = False,
        opts: LayerOptions | None = None,
    ):
        opts = opts or LayerOptions()
        if residual and in_features != out_features:
            raise ValueError("a residual block needs as many inputs as outputs")
        super().__init__(
            OrderedDict(
                # A norm that subtracts a mean and adds its own shift makes the Linear's bias redundant (not rms).
                linear=nn.Linear(in_features, out_features, bias=wants_bias(norm)),
                norm=NORMS[norm](out_features, 0, opts),
                act=make_activation(activation, opts),
                dropout=make_dropout(dropout, activation, opts),
            )
        )
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        if not self.residual:
            return super().forward(x)
        return self.dropout(self.act(x + self.norm(self.linear(x))))

    @torch.no_grad()
    def zero_init_residual_(self) -> None:
        """Make the branch output 0 (Goyal et al. 2017): the norm's scale, or the Linear without a norm."""
        if isinstance(self.norm, nn.Identity):
            self.linear.weight.zero_()
            if self.linear.bias is not None:
                self.linear.bias.zero_()
        else:
            self.norm.weight.zero_()


class MLP(nn.Module):
    """Flatten -> `depth` hidden blocks of `width` units -> a Linear classifier (logits).

    With `residual`, every block after the first (which changes the size) adds its input back."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int,
        depth: int,
        norm: str,
        activation: str,
        dropout: float,
        residual: bool = False,
        opts: LayerOptions | None = None,
    ):
        super().__init__()
        self.flatten = nn.Flatten()
        self.blocks = nn.Sequential(
            *(
                MLPBlock(in_features if i == 0 else width, width, norm, activation, dropout, residual and i > 0, opts)
                for i in range(depth)
            )
        )
        self.classifier = mark_classifier(nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.blocks(self.flatten(x)))


def build_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> MLP:
    """Multilayer perceptron on the flattened input (Rumelhart, Hinton & Williams 1986)."""
    opts = LayerOptions.of(cfg)
    dropout = cfg.dropout if cfg.dropout_placement == "blocks" else 0.0
    model = MLP(
        in_features=math.prod(input_shape),
        num_classes=num_classes,
        width=cfg.width,
        depth=cfg.depth,
        norm=cfg.norm,
        activation=cfg.activation,
        dropout=dropout,
        residual=cfg.residual,
        opts=opts,
    )
    if cfg.dropout_placement == "classifier":
        model.classifier = nn.Sequential(make_dropout(cfg.dropout, cfg.activation, opts), model.classifier)
    return model
