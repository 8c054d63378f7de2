"""Layer factories: the norm, activation and dropout levels, each a named constructor.

Models ask these tables for a layer by name and never branch on the name themselves, so adding
a level is one registered function here (timm's create_norm / create_act work the same way).
Options a level needs (group count, leaky slope) travel in one `LayerOptions`, read from the
model config, so every factory of a table has the same signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ablations.registry import Registry


@dataclass(frozen=True)
class LayerOptions:
    groups: int = 32  # group norm: Wu & He 2018's default G
    leaky_relu_slope: float = 0.01  # PyTorch's default slope
    alpha_dropout: bool = True  # SELU nets drop with AlphaDropout (Klambauer et al. 2017)

    @classmethod
    def of(cls, cfg: Any) -> LayerOptions:
        """The options of a ModelConfig (duck-typed: this package must not import ablations.config)."""
        return cls(cfg.norm_groups, cfg.leaky_relu_slope, cfg.alpha_dropout)


DEFAULTS = LayerOptions()

NormFactory = Callable[[int, int, LayerOptions], nn.Module]
ActivationFactory = Callable[[LayerOptions], nn.Module]

# `spatial_dims` is 0 for a flat (batch, features) vector, 2 for (batch, C, H, W) feature maps.
# Sequence models (rnn.py, transformer.py) ask for 0: their (batch, steps, features) tensors keep the
# features last, where LayerNorm and RMSNorm work; batch norm over steps is steps.sequence_norm's.
NORMS: Registry[NormFactory] = Registry("norm")
ACTIVATIONS: Registry[ActivationFactory] = Registry("activation")

_BATCH_NORMS: dict[int, type[nn.Module]] = {
    0: nn.BatchNorm1d,
    1: nn.BatchNorm1d,
    2: nn.BatchNorm2d,
    3: nn.BatchNorm3d,
}


class IncompatibleLevel(ValueError):
    """A level that makes no sense where it is used (e.g. instance norm on a flat vector)."""


@NORMS.register("none")
def no_norm(num_features: int, spatial_dims: int, opts: LayerOptions = DEFAULTS) -> nn.Module:
    """No normalisation: the baseline every normalisation paper is measured against."""
    return nn.Identity()


@NORMS.register("batch")
def batch_norm(num_features: int, spatial_dims: int, opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Batch normalisation, per feature over the batch (and positions) (Ioffe & Szegedy 2015)."""
    if spatial_dims not in _BATCH_NORMS:
        raise ValueError(f"batch norm supports 0 to 3 spatial dims, not {spatial_dims}")
    return _BATCH_NORMS[spatial_dims](num_features)


@NORMS.register("layer")
def layer_norm(num_features: int, spatial_dims: int, opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Layer normalisation, per sample over all its features (Ba, Kiros & Hinton 2016)."""
    if spatial_dims == 0:
        return nn.LayerNorm(num_features)
    # One group spanning every channel normalises over (C, H, W) of each sample, with a
    # per-channel scale and shift: layer norm for feature maps, whatever their size.
    return nn.GroupNorm(1, num_features)


INSTANCE_ON_VECTORS = (
    "instance norm normalises each channel over its spatial positions; a flat vector has none "
    "(every output would be its shift)"
)


@NORMS.register("instance")
def instance_norm(num_features: int, spatial_dims: int, opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Instance normalisation, per sample and channel over (H, W) (Ulyanov, Vedaldi & Lempitsky 2016),
    with a per-channel scale and shift like the other norms here, so levels differ only in statistics."""
    if spatial_dims == 0:
        raise IncompatibleLevel(INSTANCE_ON_VECTORS)
    return nn.GroupNorm(num_features, num_features)  # one group per channel: exactly instance norm


RMS_EPS = 1e-5  # the same epsilon as PyTorch's LayerNorm, so rms and layer differ only in the statistics


class FeatureMapRMSNorm(nn.Module):
    """RMS norm of each sample over all of (C, H, W), with a gain per channel: the feature-map form
    of rms, placed like layer norm's GroupNorm(1) here so the two differ only by the mean subtraction."""

    def __init__(self, channels: int, eps: float = RMS_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        dims = tuple(range(1, x.dim()))
        scale = torch.rsqrt(x.float().square().mean(dim=dims, keepdim=True) + self.eps).to(x.dtype)
        return x * scale * self.weight.view(-1, *([1] * (x.dim() - 2)))


@NORMS.register("rms")
def rms_norm(num_features: int, spatial_dims: int, opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Root-mean-square norm x / sqrt(mean(x^2) + eps) * g, no mean subtraction and no shift
    (Zhang & Sennrich 2019), per sample over its features; for feature maps over (C, H, W)."""
    if spatial_dims == 0:
        return nn.RMSNorm(num_features, eps=RMS_EPS)
    return FeatureMapRMSNorm(num_features)


# The module types the norm levels build (diagnostics record their outputs); sequence models'
# wrappers (steps.py) subclass or contain these.
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, FeatureMapRMSNorm)

# Norms that neither subtract a mean nor add a shift leave a preceding layer's bias doing work.
SHIFTLESS_NORMS = ("none", "rms")


def wants_bias(norm: str) -> bool:
    """Whether a Linear / Conv followed by `norm` should have a bias (redundant before a shift)."""
    return norm in SHIFTLESS_NORMS


def group_count(channels: int, groups: int) -> int:
    """The largest divisor of `channels` not above `groups`: Wu & He's G where a layer is wide enough."""
    return next(g for g in range(min(groups, channels), 0, -1) if channels % g == 0)


@NORMS.register("group")
def group_norm(num_features: int, spatial_dims: int, opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Group normalisation: channels split into G groups, each normalised per sample over its channels
    and positions (Wu & He 2018; G = 32 by default, fewer when a layer has fewer channels)."""
    return nn.GroupNorm(group_count(num_features, opts.groups), num_features)


@ACTIVATIONS.register("relu")
def relu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Rectified linear unit max(0, x) (Nair & Hinton 2010; Glorot, Bordes & Bengio 2011)."""
    return nn.ReLU()


@ACTIVATIONS.register("leaky_relu")
def leaky_relu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Leaky ReLU, slope `model.leaky_relu_slope` (0.01) for x < 0 (Maas, Hannun & Ng 2013)."""
    return nn.LeakyReLU(opts.leaky_relu_slope)


@ACTIVATIONS.register("prelu")
def prelu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Parametric ReLU: a learned negative slope, one per layer, starting at 0.25 (He et al. 2015)."""
    return nn.PReLU(num_parameters=1, init=0.25)


@ACTIVATIONS.register("elu")
def elu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Exponential linear unit, alpha = 1 (Clevert, Unterthiner & Hochreiter 2016)."""
    return nn.ELU(alpha=1.0)


@ACTIVATIONS.register("selu")
def selu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Scaled ELU with lambda ~ 1.0507, alpha ~ 1.6733 (Klambauer et al. 2017, self-normalising nets)."""
    return nn.SELU()


@ACTIVATIONS.register("gelu")
def gelu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Gaussian error linear unit x * Phi(x), exact erf form (Hendrycks & Gimpel 2016)."""
    return nn.GELU(approximate="none")


@ACTIVATIONS.register("silu")
def silu(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Sigmoid-weighted linear unit x * sigmoid(x) (Elfwing, Uchibe & Doya 2018; "swish", Ramachandran et al. 2017)."""
    return nn.SiLU()


@ACTIVATIONS.register("tanh")
def tanh(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Hyperbolic tangent, the zero-centred sigmoid (LeCun et al. 1998, Efficient BackProp)."""
    return nn.Tanh()


@ACTIVATIONS.register("sigmoid")
def sigmoid(opts: LayerOptions = DEFAULTS) -> nn.Module:
    """Logistic sigmoid 1 / (1 + e^-x) (Rumelhart, Hinton & Williams 1986)."""
    return nn.Sigmoid()


def make_activation(name: str, opts: LayerOptions = DEFAULTS) -> nn.Module:
    act = ACTIVATIONS[name](opts)
    act.is_activation = True  # diagnostics hook exactly these modules: their input is the pre-activation
    return act


def make_dropout(
    p: float, activation: str = "relu", opts: LayerOptions = DEFAULTS, channels: bool = False
) -> nn.Module:
    """Dropout with drop probability p (Srivastava et al. 2014); Identity when p == 0.

    `channels` drops whole feature maps (Tompson et al. 2015), for conv blocks. After SELU it is
    AlphaDropout, which keeps the zero mean and unit variance SELU nets rely on (Klambauer et al. 2017).
    """
    # Identity keeps p = 0 models free of a no-op layer in printouts and per-layer diagnostics.
    if p == 0:
        return nn.Identity()
    if activation == "selu" and opts.alpha_dropout:
        return nn.FeatureAlphaDropout(p) if channels else nn.AlphaDropout(p)
    return nn.Dropout2d(p) if channels else nn.Dropout(p)
