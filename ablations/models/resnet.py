"""He et al. 2015's CIFAR ResNets (section 4.2): 6n+2 layers, 16/32/64 channels, option-A shortcuts.

A conv (16 channels), then three stages of n basic blocks (two 3x3 convs each) on 32x32, 16x16 and
8x8 maps, global average pooling and a Linear classifier. Option A: where a block halves the map
and doubles the channels, the shortcut subsamples and pads with zero channels, so it has no
parameters and the plain counterpart (`residual: false`, same blocks without the shortcut) has
exactly the same parameter count, as in the paper's plain-vs-residual comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.models.init import mark_classifier
from ablations.models.layers import NORMS, LayerOptions, make_activation, make_dropout, wants_bias

if TYPE_CHECKING:
    from ablations.config import ModelConfig

CHANNELS = (16, 32, 64)


def blocks_per_stage(depth: int) -> int:
    """n for a 6n+2-layer ResNet; ValueError for other depths."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110, ...), not {depth}")
    return (depth - 2) // 6


class ShortcutA(nn.Module):
    """Identity, or subsample by 2 and zero-pad the new channels (option A, parameter-free)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x


class BasicBlock(nn.Module):
    """conv-norm-act-(dropout)-conv-norm, plus the shortcut when residual, then act (He et al. 2015, Fig. 2)."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: ModelConfig, opts: LayerOptions, dropout: float):
        super().__init__()
        bias = wants_bias(cfg.norm)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.norm1 = NORMS[cfg.norm](cout, 2, opts)
        self.act1 = make_activation(cfg.activation, opts)
        self.dropout = make_dropout(dropout, cfg.activation, opts, channels=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.norm2 = NORMS[cfg.norm](cout, 2, opts)
        self.shortcut = ShortcutA(cin, cout, stride) if cfg.residual else None
        self.act2 = make_activation(cfg.activation, opts)

    def forward(self, x: Tensor) -> Tensor:
        out = self.norm2(self.conv2(self.dropout(self.act1(self.norm1(self.conv1(x))))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act2(out)

    @torch.no_grad()
    def zero_init_residual_(self) -> None:
        """The branch's last norm scale = 0 (Goyal et al. 2017), or its last conv where it has no norm."""
        if isinstance(self.norm2, nn.Identity):
            self.conv2.weight.zero_()
            if self.conv2.bias is not None:
                self.conv2.bias.zero_()
        else:
            self.norm2.weight.zero_()


class CifarResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, cfg: ModelConfig):
        super().__init__()
        n = blocks_per_stage(cfg.depth)
        opts = LayerOptions.of(cfg)
        block_p = cfg.dropout if cfg.dropout_placement == "blocks" else 0.0
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, CHANNELS[0], 3, 1, 1, bias=wants_bias(cfg.norm)),
            NORMS[cfg.norm](CHANNELS[0], 2, opts),
            make_activation(cfg.activation, opts),
        )
        blocks: list[nn.Module] = []
        cin = CHANNELS[0]
        for stage, cout in enumerate(CHANNELS):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, cfg, opts, block_p))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head_p = cfg.dropout if cfg.dropout_placement == "classifier" else 0.0
        self.dropout = make_dropout(head_p, cfg.activation, opts)
        self.classifier = mark_classifier(nn.Linear(cin, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.pool(self.blocks(self.stem(x)))))


def build_resnet(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> CifarResNet:
    """CIFAR ResNet-(6n+2) of He et al. 2015 (Table 6: 20/32/44/56/110 layers); `width` is not used."""
    if len(input_shape) != 3:
        raise ValueError(f"resnet needs image inputs (C, H, W), not shape {input_shape}")
    return CifarResNet(input_shape[0], num_classes, cfg)
