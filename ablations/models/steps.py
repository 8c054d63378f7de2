"""What the sequence models (rnn.py, transformer.py) share: their view of the input as steps, and
their norms on (batch, steps, features) tensors, whose features are last.

Inputs of shape (T, F) are T steps of F features. An image (C, H, W) is read as H steps (its rows)
of C * W features (every channel of one row), the view under which "sequential MNIST by rows" is
defined; any other shape is refused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.models.layers import NORMS, LayerOptions

SEQUENCE_NORMS = ("none", "layer", "batch", "rms")  # instance and group norm need spatial positions


def sequence_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(steps, features) of an input: (T, F) as is, an image (C, H, W) as H rows of C * W values."""
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1]
    if len(input_shape) == 3:
        c, h, w = input_shape
        return h, c * w
    raise ValueError(f"sequence models take (steps, features) or images (C, H, W), not shape {input_shape}")


def as_steps(x: Tensor) -> Tensor:
    """(B, T, F) as is; (B, C, H, W) -> (B, H, C * W), row by row."""
    if x.dim() == 4:
        b, c, h, w = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, h, c * w)
    return x


class StepBatchNorm(nn.Module):
    """Batch norm with statistics per time step (and unit), over the batch only, and one scale and
    shift per unit shared by all steps (Cooijmans et al. 2017, "Recurrent Batch Normalization")."""

    def __init__(self, steps: int, features: int):
        super().__init__()
        self.stats = nn.BatchNorm1d(steps * features, affine=False)
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor, step: int | None = None) -> Tensor:
        """All steps of (B, T, F) at once; or (B, F) at time `step`, for a recurrent cell's loop."""
        if step is None:
            b, t, f = x.shape
            return self.stats(x.reshape(b, t * f)).view(b, t, f) * self.weight + self.bias
        f = x.shape[1]
        at = slice(step * f, (step + 1) * f)  # views: batch_norm updates step t's running statistics in place
        stats = self.stats
        y = F.batch_norm(
            x, stats.running_mean[at], stats.running_var[at], None, None, self.training, stats.momentum, stats.eps
        )
        return y * self.weight + self.bias


class TokenBatchNorm(nn.BatchNorm1d):
    """Batch norm per feature over the batch and all positions, the form Shen et al. 2020
    ("PowerNorm") compare against layer norm in Transformers."""

    def forward(self, x: Tensor) -> Tensor:
        b, t, f = x.shape
        return super().forward(x.reshape(b * t, f)).view(b, t, f)


def at_step(norm: nn.Module, x: Tensor, step: int) -> Tensor:
    """`norm` on one step (B, F) of a recurrent loop: batch norm uses that step's statistics."""
    return norm(x, step) if isinstance(norm, StepBatchNorm) else norm(x)


def sequence_norm(name: str, features: int, steps: int | None, opts: LayerOptions) -> nn.Module:
    """Norm level `name` on (B, T, features): per step over the features (layer, rms), or batch
    norm with statistics per step (`steps` given: recurrent nets) or over all positions (None)."""
    if name not in SEQUENCE_NORMS:
        raise ValueError(f"norm {name} needs spatial positions; sequence models take {', '.join(SEQUENCE_NORMS)}")
    if name == "batch":
        return TokenBatchNorm(features) if steps is None else StepBatchNorm(steps, features)
    return NORMS[name](features, 0, opts)  # LayerNorm / RMSNorm act on the last dim, step by step
