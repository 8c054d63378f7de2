"""Regularisers of the training loss: L1 on weights, label smoothing (weight decay is the
optimizer's; gradient clipping is one call in the loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def weight_tensors(model: nn.Module) -> list[nn.Parameter]:
    """The weights an L1 penalty acts on: kernels of linear and conv layers (and embeddings), i.e.
    parameters with two or more dimensions. Biases and norm scales/shifts are 1-D and left out."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]


def l1_penalty(weights: list[nn.Parameter], strength: float) -> torch.Tensor:
    """strength * sum |w| over the given weights (Tibshirani 1996's lasso penalty; for networks,
    e.g. Goodfellow et al. 2016, sec. 7.1.2)."""
    return strength * torch.stack([w.abs().sum() for w in weights]).sum()


def classification_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy against targets smoothed to (1 - eps) on the label and eps / K on every class
    (Szegedy et al. 2016, sec. 7; torch's `label_smoothing`)."""
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
