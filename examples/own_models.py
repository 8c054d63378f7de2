"""Your own models, ablated by the suite (see the README, "Ablate your own model").

`SmallCNN` is plain PyTorch with no import of ours: the suite applies `norm` and `activation`
levels to it by swapping its BatchNorm2d and ReLU layers. `build_resnet_mlp` is a builder that
takes the factors itself and makes each layer with the suite's public layer factories.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ablations import layers


class SmallCNN(nn.Module):
    """Two conv blocks (Conv -> BatchNorm2d -> ReLU), global average pool, a linear classifier."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    def __init__(self, width: int, norm: str, activation: str, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = layers.norm(norm, width)  # (N, C) vectors: spatial_dims 0
        self.act = layers.activation(activation)
        self.drop = layers.dropout(dropout, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.act(x + self.norm(self.linear(x))))


def build_resnet_mlp(
    depth: int,
    norm: str,
    activation: str,
    num_classes: int,
    input_shape: tuple[int, ...],
    width: int = 64,
    dropout: float = 0.0,
) -> nn.Module:
    """A residual MLP: the suite passes `depth`, `norm`, `activation` (factors), `num_classes` and
    `input_shape` (from the data); `width` and `dropout` keep their defaults unless the space sets them."""
    inputs = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(inputs, width),
        layers.activation(activation),
        *(ResidualBlock(width, norm, activation, dropout) for _ in range(depth)),
        layers.mark_classifier(nn.Linear(width, num_classes)),  # inits give the classifier gain 1
    )
