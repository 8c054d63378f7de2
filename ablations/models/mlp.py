"""A multilayer perceptron whose hidden blocks are assembled from the factor tables."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import Tensor, nn

from ablations.models.init import mark_classifier
from ablations.models.layers import ACTIVATIONS, NORMS, make_dropout

if TYPE_CHECKING:  # ablations.config imports this package, so only type checkers may import it back
    from ablations.config import ModelConfig


class MLPBlock(nn.Module):
    """One hidden layer: Linear -> norm -> activation -> dropout."""

    def __init__(self, in_features: int, out_features: int, norm: str, activation: str, dropout: float):
        super().__init__()
        # A norm that subtracts a mean and adds its own shift makes the Linear's bias redundant.
        self.linear = nn.Linear(in_features, out_features, bias=norm == "none")
        self.norm = NORMS[norm](out_features, 0)
        self.act = ACTIVATIONS[activation]()
        self.dropout = make_dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.act(self.norm(self.linear(x))))


class MLP(nn.Module):
    """Flatten -> `depth` hidden blocks of `width` units -> a Linear classifier (logits)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int,
        depth: int,
        norm: str,
        activation: str,
        dropout: float,
    ):
        super().__init__()
        self.flatten = nn.Flatten()
        self.blocks = nn.Sequential(
            *(MLPBlock(in_features if i == 0 else width, width, norm, activation, dropout) for i in range(depth))
        )
        self.classifier = mark_classifier(nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.blocks(self.flatten(x)))


def build_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> MLP:
    """Multilayer perceptron on the flattened input (Rumelhart, Hinton & Williams 1986)."""
    return MLP(
        in_features=math.prod(input_shape),
        num_classes=num_classes,
        width=cfg.width,
        depth=cfg.depth,
        norm=cfg.norm,
        activation=cfg.activation,
        dropout=cfg.dropout,
    )
