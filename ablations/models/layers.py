"""Layer factories: the norm, activation and dropout levels, each a named constructor.

Models ask these tables for a layer by name and never branch on the name themselves, so adding
a level is one registered function here (timm's create_norm / create_act work the same way).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ablations.registry import Registry

NormFactory = Callable[[int, int], nn.Module]
ActivationFactory = Callable[[], nn.Module]

# `spatial_dims` is 0 for a flat (batch, features) vector, 2 for (batch, C, H, W) feature maps.
NORMS: Registry[NormFactory] = Registry("norm")
ACTIVATIONS: Registry[ActivationFactory] = Registry("activation")

# PyTorch's default slope; init.py reads it too, so the init gain matches the layer.
LEAKY_RELU_SLOPE = 0.01

_BATCH_NORMS: dict[int, type[nn.Module]] = {
    0: nn.BatchNorm1d,
    1: nn.BatchNorm1d,
    2: nn.BatchNorm2d,
    3: nn.BatchNorm3d,
}


@NORMS.register("none")
def no_norm(num_features: int, spatial_dims: int) -> nn.Module:
    """No normalisation: the baseline every normalisation paper is measured against."""
    return nn.Identity()


@NORMS.register("batch")
def batch_norm(num_features: int, spatial_dims: int) -> nn.Module:
    """Batch normalisation, per feature over the batch (and positions) (Ioffe & Szegedy 2015)."""
    if spatial_dims not in _BATCH_NORMS:
        raise ValueError(f"batch norm supports 0 to 3 spatial dims, not {spatial_dims}")
    return _BATCH_NORMS[spatial_dims](num_features)


@NORMS.register("layer")
def layer_norm(num_features: int, spatial_dims: int) -> nn.Module:
    """Layer normalisation, per sample over all its features (Ba, Kiros & Hinton 2016)."""
    if spatial_dims == 0:
        return nn.LayerNorm(num_features)
    # One group spanning every channel normalises over (C, H, W) of each sample, with a
    # per-channel scale and shift: layer norm for feature maps, whatever their size.
    return nn.GroupNorm(1, num_features)


@ACTIVATIONS.register("relu")
def relu() -> nn.Module:
    """Rectified linear unit max(0, x) (Nair & Hinton 2010; Glorot, Bordes & Bengio 2011)."""
    return nn.ReLU()


@ACTIVATIONS.register("leaky_relu")
def leaky_relu() -> nn.Module:
    """Leaky ReLU, slope 0.01 for x < 0 (Maas, Hannun & Ng 2013)."""
    return nn.LeakyReLU(LEAKY_RELU_SLOPE)


@ACTIVATIONS.register("elu")
def elu() -> nn.Module:
    """Exponential linear unit, alpha = 1 (Clevert, Unterthiner & Hochreiter 2016)."""
    return nn.ELU(alpha=1.0)


@ACTIVATIONS.register("selu")
def selu() -> nn.Module:
    """Scaled ELU with lambda ~ 1.0507, alpha ~ 1.6733 (Klambauer et al. 2017, self-normalising nets)."""
    return nn.SELU()


@ACTIVATIONS.register("gelu")
def gelu() -> nn.Module:
    """Gaussian error linear unit x * Phi(x), exact erf form (Hendrycks & Gimpel 2016)."""
    return nn.GELU(approximate="none")


@ACTIVATIONS.register("tanh")
def tanh() -> nn.Module:
    """Hyperbolic tangent, the zero-centred sigmoid (LeCun et al. 1998, Efficient BackProp)."""
    return nn.Tanh()


@ACTIVATIONS.register("sigmoid")
def sigmoid() -> nn.Module:
    """Logistic sigmoid 1 / (1 + e^-x) (Rumelhart, Hinton & Williams 1986)."""
    return nn.Sigmoid()


def make_dropout(p: float) -> nn.Module:
    """Dropout with drop probability p (Srivastava et al. 2014); Identity when p == 0."""
    # Identity keeps p = 0 models free of a no-op layer in printouts and per-layer diagnostics.
    return nn.Identity() if p == 0 else nn.Dropout(p)
