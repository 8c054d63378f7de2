"""A Transformer encoder classifier (Vaswani et al. 2017) with the norm and its position as factors.

Steps are embedded by a Linear to `width` dimensions, positions added (learned, sinusoidal or
none), then `depth` encoder blocks of multi-head self-attention and a feed-forward net of
`ff_mult * width` units with the model's activation. The classifier reads the mean over steps, or
a learned class token prepended to the steps (Devlin et al. 2019; Dosovitskiy et al. 2021).

`norm_position`: `post` is the original block, x = norm(x + sublayer(x)); `pre` normalises the
sublayer's input, x = x + sublayer(norm(x)), with one more norm before the head (Xiong et al.
2020, "On Layer Normalization in the Transformer Architecture"). Without `residual` the `+ x`
is dropped and nothing else, so the two variants have exactly the same parameters. Dropout acts
on the embeddings and on each sublayer's output before the sum (Vaswani et al. 2017, 5.4).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.models.init import mark_classifier
from ablations.models.layers import LayerOptions, make_activation, make_dropout
from ablations.models.steps import as_steps, sequence_norm, sequence_shape

if TYPE_CHECKING:
    from ablations.config import ModelConfig

POSITION_STD = 0.02  # learned positions and class token start N(0, 0.02^2), as in BERT and ViT


def sinusoidal_positions(steps: int, dim: int) -> Tensor:
    """PE[t, 2i] = sin(t / 10000^(2i/dim)), PE[t, 2i+1] = cos(same) (Vaswani et al. 2017, 3.5)."""
    t = torch.arange(steps, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(steps, dim)
    pe[:, 0::2] = torch.sin(t * freq)
    pe[:, 1::2] = torch.cos(t * freq)[:, : dim // 2]
    return pe


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention: softmax(Q K^T / sqrt(d_head)) V per head."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Sequential):
    """Linear(width, ff_mult * width) -> activation -> Linear(ff_mult * width, width)."""

    def __init__(self, dim: int, hidden: int, activation: str, opts: LayerOptions):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.act = make_activation(activation, opts)
        self.act.unit_dim = -1  # diagnostics: a unit is a feature of the last dim, at any step
        self.linear2 = nn.Linear(hidden, dim)


class EncoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, opts: LayerOptions, dropout: float):
        super().__init__()
        dim = cfg.width
        self.pre, self.residual = cfg.norm_position == "pre", cfg.residual
        self.attn_norm = sequence_norm(cfg.norm, dim, None, opts)
        self.attn = SelfAttention(dim, cfg.heads)
        self.attn_dropout = make_dropout(dropout, cfg.activation, opts)
        self.ff_norm = sequence_norm(cfg.norm, dim, None, opts)
        self.ff = FeedForward(dim, cfg.ff_mult * dim, cfg.activation, opts)
        self.ff_dropout = make_dropout(dropout, cfg.activation, opts)

    def sublayer(self, x: Tensor, f: nn.Module, norm: nn.Module, dropout: nn.Module) -> Tensor:
        if self.pre:
            y = dropout(f(norm(x)))
            return x + y if self.residual else y
        y = dropout(f(x))
        return norm(x + y if self.residual else y)

    def forward(self, x: Tensor) -> Tensor:
        x = self.sublayer(x, self.attn, self.attn_norm, self.attn_dropout)
        return self.sublayer(x, self.ff, self.ff_norm, self.ff_dropout)

    @torch.no_grad()
    def zero_init_residual_(self) -> None:
        """Both sublayers output 0 (Goyal et al. 2017's idea; "ReZero", Bachlechner et al. 2021)."""
        for layer in (self.attn.out, self.ff.linear2):
            layer.weight.zero_()
            layer.bias.zero_()


class Transformer(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, cfg: ModelConfig):
        super().__init__()
        opts = LayerOptions.of(cfg)
        steps, features = sequence_shape(input_shape)
        block_p = cfg.dropout if cfg.dropout_placement == "blocks" else 0.0
        self.embed = nn.Linear(features, cfg.width)
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.width) * POSITION_STD) if cfg.pooling == "cls" else None
        positions = steps + (cfg.pooling == "cls")
        self.learned = None
        if cfg.positions == "learned":
            self.learned = nn.Parameter(torch.randn(1, positions, cfg.width) * POSITION_STD)
        fixed = sinusoidal_positions(positions, cfg.width) if cfg.positions == "sinusoidal" else None
        self.register_buffer("sinusoidal", fixed, persistent=False)
        self.embed_dropout = make_dropout(block_p, cfg.activation, opts)
        self.blocks = nn.Sequential(*(EncoderBlock(cfg, opts, block_p) for _ in range(cfg.depth)))
        self.final_norm = sequence_norm(cfg.norm, cfg.width, None, opts) if self.pre(cfg) else nn.Identity()
        self.pooling = cfg.pooling
        head_p = cfg.dropout if cfg.dropout_placement == "classifier" else 0.0
        self.dropout = make_dropout(head_p, cfg.activation, opts)
        self.classifier = mark_classifier(nn.Linear(cfg.width, num_classes))

    @staticmethod
    def pre(cfg: ModelConfig) -> bool:
        return cfg.norm_position == "pre"

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(as_steps(x))
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
        if self.learned is not None:
            x = x + self.learned
        if self.sinusoidal is not None:
            x = x + self.sinusoidal
        x = self.final_norm(self.blocks(self.embed_dropout(x)))
        pooled = x[:, 0] if self.pooling == "cls" else x.mean(dim=1)
        return self.classifier(self.dropout(pooled))


def build_transformer(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Transformer:
    """Transformer encoder (Vaswani et al. 2017): `depth` blocks of width `width`, `heads` heads."""
    return Transformer(input_shape, num_classes, cfg)
