"""A VGG-style convolutional net: stacks of 3x3 convolutions, max-pool downsampling between stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from ablations.models.init import mark_classifier
from ablations.models.layers import NORMS, LayerOptions, make_activation, make_dropout, wants_bias

if TYPE_CHECKING:
    from ablations.config import ModelConfig

STAGES = 3  # channels double and the map halves at each stage, as in VGG (Simonyan & Zisserman 2015)


def stage_sizes(depth: int, stages: int = STAGES) -> list[int]:
    """`depth` conv layers split over at most `stages` stages, earlier stages taking the extra ones."""
    n = min(depth, stages)
    return [depth // n + (1 if i < depth % n else 0) for i in range(n)]


class ConvBlock(nn.Sequential):
    """3x3 conv (same padding) -> norm -> activation -> optional channel dropout."""

    def __init__(self, cin: int, cout: int, norm: str, activation: str, dropout: float, opts: LayerOptions):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=wants_bias(norm))
        self.norm = NORMS[norm](cout, 2, opts)
        self.act = make_activation(activation, opts)
        self.dropout = make_dropout(dropout, activation, opts, channels=True)


class CNN(nn.Module):
    """Stages of ConvBlocks, each but the last followed by 2x2 max-pooling, then global average
    pooling and a Linear classifier (Lin et al. 2014's head: it fits any input size; VGG used FC layers)."""

    def __init__(self, in_channels: int, num_classes: int, cfg: ModelConfig):
        super().__init__()
        opts = LayerOptions.of(cfg)
        block_p = cfg.dropout if cfg.dropout_placement == "blocks" else 0.0
        layers: list[nn.Module] = []
        cin = in_channels
        for stage, size in enumerate(stage_sizes(cfg.depth)):
            cout = cfg.width * 2**stage
            for _ in range(size):
                layers.append(ConvBlock(cin, cout, cfg.norm, cfg.activation, block_p, opts))
                cin = cout
            if stage < STAGES - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: an odd or 1-pixel map still pools
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head_p = cfg.dropout if cfg.dropout_placement == "classifier" else 0.0
        self.dropout = make_dropout(head_p, cfg.activation, opts)
        self.classifier = mark_classifier(nn.Linear(cin, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.pool(self.features(x))))


def build_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> CNN:
    """VGG-style net (Simonyan & Zisserman 2015): `depth` 3x3 convs, `width` channels doubling per stage."""
    if len(input_shape) != 3:
        raise ValueError(f"cnn needs image inputs (C, H, W), not shape {input_shape}")
    return CNN(input_shape[0], num_classes, cfg)
