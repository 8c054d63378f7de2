"""Every model factor level checked numerically against what its paper defines."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ablations.config import ModelConfig
from ablations.models import ACTIVATIONS, ARCHITECTURES, INITS, NORMS, build_model, count_parameters
from ablations.models.init import InitContext, mark_classifier
from ablations.models.layers import make_dropout
from ablations.models.mlp import MLPBlock

SELU_LAMBDA = 1.0507009873554804934193349852946  # Klambauer et al. 2017, eq. (14)
SELU_ALPHA = 1.6732632423543772848170429916717

# The gain for each activation, written out from its derivation rather than read from PyTorch.
GAINS = {
    "relu": math.sqrt(2),
    "leaky_relu": math.sqrt(2 / (1 + 0.01**2)),
    "tanh": 5 / 3,
    "selu": 1.0,  # LeCun normal, as the SELU paper prescribes
    "sigmoid": 1.0,
    "elu": math.sqrt(2),  # no gain of its own in PyTorch: the relu gain by design
    "gelu": math.sqrt(2),
    "silu": math.sqrt(2),  # like elu and gelu: identity for large x, ~0 for very negative x
    "prelu": math.sqrt(2 / (1 + 0.25**2)),  # the leaky gain at PReLU's initial slope 0.25
}


def cfg(**overrides: object) -> ModelConfig:
    """A validated model config with ModelConfig's defaults."""
    return ModelConfig(**overrides)


def std(t: torch.Tensor) -> float:
    return t.detach().double().std(unbiased=False).item()


# ---------------------------------------------------------------- norms


def features_with_distinct_stats(*shape: int) -> torch.Tensor:
    """Data whose features (dim 1) each have their own mean and scale, so norms are told apart."""
    g = torch.Generator().manual_seed(0)
    c = shape[1]
    view = (1, c) + (1,) * (len(shape) - 2)
    shift = torch.linspace(-5, 5, c).view(view)
    scale = torch.linspace(0.5, 4, c).view(view)
    return torch.randn(*shape, generator=g) * scale + shift


def test_no_norm_is_identity() -> None:
    x = features_with_distinct_stats(32, 16)
    assert torch.equal(NORMS["none"](16, 0)(x), x)


def test_batch_norm_flat_normalises_each_feature_over_the_batch() -> None:
    x = features_with_distinct_stats(512, 16)
    y = NORMS["batch"](16, 0).train()(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    # Not per sample: a sample's features keep their spread of means after batch norm.
    assert y.mean(1).abs().max() > 0.1


def test_batch_norm_2d_normalises_each_channel_over_batch_and_positions() -> None:
    x = features_with_distinct_stats(32, 8, 6, 6)
    y = NORMS["batch"](8, 2).train()(x)
    per_channel = y.transpose(0, 1).reshape(8, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(1, unbiased=False), torch.ones(8), atol=1e-3, rtol=0)


def test_layer_norm_flat_normalises_each_sample_over_its_features() -> None:
    x = features_with_distinct_stats(64, 32)
    y = NORMS["layer"](32, 0)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(1, unbiased=False), torch.ones(64), atol=1e-3, rtol=0)
    # Not over the batch: each feature keeps its own mean across samples.
    assert y.mean(0).abs().max() > 0.5


def test_layer_norm_2d_normalises_each_sample_over_channels_and_positions() -> None:
    x = features_with_distinct_stats(16, 8, 5, 5)
    y = NORMS["layer"](8, 2)(x)
    per_sample = y.reshape(16, -1)
    torch.testing.assert_close(per_sample.mean(1), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_sample.std(1, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    # Over (C, H, W) together, not per channel (that would be instance norm).
    assert y.mean((2, 3)).abs().max() > 0.5


def test_every_norm_has_a_test() -> None:
    # instance and group norm are tested in test_catalog.py, rms in test_sequence_models.py
    assert set(NORMS) == {"none", "batch", "layer", "instance", "group", "rms"}, "a new norm level needs a numeric test"


# ---------------------------------------------------------------- activations

GRID = torch.linspace(-6, 6, 2001, dtype=torch.float64)
FORMULAS = {
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "selu": lambda x: SELU_LAMBDA * torch.where(x > 0, x, SELU_ALPHA * (torch.exp(x) - 1)),
    "gelu": lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "prelu": lambda x: torch.where(x > 0, x, 0.25 * x),  # at its initial slope
}


@pytest.mark.parametrize("name", FORMULAS)
def test_activation_matches_its_formula(name: str) -> None:
    torch.testing.assert_close(ACTIVATIONS[name]().double()(GRID), FORMULAS[name](GRID), atol=1e-12, rtol=1e-12)


def test_gelu_is_the_exact_form_not_the_tanh_approximation() -> None:
    approx = nn.GELU(approximate="tanh")(GRID)
    assert (ACTIVATIONS["gelu"]()(GRID) - approx).abs().max() > 1e-5


def test_every_activation_has_a_formula_and_a_gain() -> None:
    assert set(ACTIVATIONS) == set(FORMULAS) == set(GAINS), "a new activation needs a formula and a gain here"


# ---------------------------------------------------------------- dropout


def test_dropout_zero_is_identity() -> None:
    assert isinstance(make_dropout(0.0), nn.Identity)


def test_dropout_zeroes_about_p_of_units_in_train_and_none_in_eval() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    drop = make_dropout(0.3)
    y = drop.train()(x)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.01
    # Survivors are scaled by 1/(1-p) so the expected activation is unchanged (inverted dropout).
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    assert torch.equal(drop.eval()(x), x)


# ---------------------------------------------------------------- inits

# A hidden layer with fan_in != fan_out (2000 -> 250) and a classifier (250 -> 1000), so that
# xavier, kaiming fan_in and kaiming fan_out all predict different stds.
IN, WIDTH, CLASSES = 2000, 250, 1000


def wide_model(init: str, activation: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model(cfg(init=init, activation=activation, width=WIDTH, depth=1), (IN,), CLASSES)


def hidden_and_classifier(model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    return model.blocks[0].linear, model.classifier


def assert_gaussian(w: torch.Tensor) -> None:
    """A normal puts ~4.6% of its mass beyond 2 sigma; a uniform of the same std (bound 1.73 sigma) none."""
    beyond = (w.abs() > 2 * std(w)).float().mean().item()
    assert 0.04 < beyond < 0.052, f"{beyond:.4f} of weights beyond 2 sigma: not a normal distribution"


def assert_close_rel(actual: float, expected: float, rel: float = 0.03) -> None:
    assert abs(actual - expected) < rel * expected, f"{actual:.5f} is not within {rel:.0%} of {expected:.5f}"


@pytest.mark.parametrize("activation", GAINS)
def test_xavier_std_is_sqrt_2_over_fan_in_plus_fan_out_whatever_the_activation(activation: str) -> None:
    hidden, classifier = hidden_and_classifier(wide_model("xavier", activation))
    assert_close_rel(std(hidden.weight), math.sqrt(2 / (IN + WIDTH)))  # Glorot & Bengio: no gain
    assert_close_rel(std(classifier.weight), 1.0 * math.sqrt(2 / (WIDTH + CLASSES)))  # gain 1: feeds softmax
    assert abs(hidden.weight.mean().item()) < 1e-3
    assert_gaussian(hidden.weight)
    assert not hidden.bias.any() and not classifier.bias.any()


@pytest.mark.parametrize("activation", GAINS)
def test_kaiming_std_is_gain_over_sqrt_fan_in(activation: str) -> None:
    hidden, classifier = hidden_and_classifier(wide_model("kaiming", activation))
    assert_close_rel(std(hidden.weight), GAINS[activation] / math.sqrt(IN))
    assert_close_rel(std(classifier.weight), 1.0 / math.sqrt(WIDTH))
    assert_gaussian(hidden.weight)
    assert not hidden.bias.any() and not classifier.bias.any()


def test_kaiming_fan_in_of_a_conv_counts_the_kernel() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 256, kernel_size=3)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), mark_classifier(nn.Linear(256, 10)))
    INITS["kaiming"](model, InitContext("relu"))
    assert_close_rel(std(conv.weight), math.sqrt(2) / math.sqrt(64 * 3 * 3))
    assert not conv.bias.any()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_orthogonal_weights_are_gain_times_orthonormal(activation: str) -> None:
    hidden, classifier = hidden_and_classifier(wide_model("orthogonal", activation))
    gain = GAINS[activation]
    w = hidden.weight.detach().double()  # 250 x 2000: orthonormal rows
    torch.testing.assert_close(w @ w.T, gain**2 * torch.eye(WIDTH, dtype=torch.float64), atol=1e-4, rtol=0)
    c = classifier.weight.detach().double()  # 1000 x 250: orthonormal columns, gain 1
    torch.testing.assert_close(c.T @ c, torch.eye(WIDTH, dtype=torch.float64), atol=1e-4, rtol=0)
    assert not hidden.bias.any() and not classifier.bias.any()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_normal_init_is_std_001_whatever_the_activation(activation: str) -> None:
    hidden, classifier = hidden_and_classifier(wide_model("normal", activation))
    assert_close_rel(std(hidden.weight), 0.01)
    assert_close_rel(std(classifier.weight), 0.01)
    assert abs(hidden.weight.mean().item()) < 1e-4
    assert_gaussian(hidden.weight)
    assert not hidden.bias.any() and not classifier.bias.any()


def test_default_init_leaves_pytorchs_own_init() -> None:
    config = cfg(init="default", width=WIDTH, depth=2)
    torch.manual_seed(0)
    model = build_model(config, (IN,), CLASSES)
    torch.manual_seed(0)
    fresh = ARCHITECTURES["mlp"](config, (IN,), CLASSES)
    for (name, p), q in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    # PyTorch's nn.Linear default: uniform(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in); biases nonzero.
    hidden, _ = hidden_and_classifier(model)
    assert_close_rel(std(hidden.weight), 1 / math.sqrt(3 * IN))
    assert hidden.bias.abs().min() > 0


def test_init_refuses_a_model_without_a_marked_classifier() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="classifier"):
        INITS["xavier"](model, InitContext("relu"))


def test_every_init_has_a_test() -> None:
    # zeros, the uniform variants and lsuv are tested in test_catalog.py
    assert set(INITS) == {
        "default", "zeros", "normal", "xavier", "xavier_normal", "xavier_uniform",
        "kaiming", "kaiming_normal", "kaiming_uniform", "orthogonal", "lsuv",
    }, "a new init needs a test"  # fmt: skip


# ---------------------------------------------------------------- MLP


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_depth_is_the_number_of_hidden_linear_layers(depth: int) -> None:
    model = build_model(cfg(depth=depth), (1, 8, 8), 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    hidden = [m for m in linears if not getattr(m, "is_classifier", False)]
    assert len(hidden) == depth
    assert len(linears) == depth + 1 and linears[-1] is model.classifier


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("depth", [1, 3])
def test_parameter_count_formula(norm: str, depth: int) -> None:
    d_in, w, c = 64, 32, 10
    # With a norm, each hidden Linear drops its bias (w) and the norm adds a scale and shift (2w).
    per_unit_extra = 1 if norm == "none" else 2
    expected = (d_in * w + per_unit_extra * w) + (depth - 1) * (w * w + per_unit_extra * w) + (w * c + c)
    model = build_model(cfg(norm=norm, depth=depth, width=w), (1, 8, 8), c)
    assert count_parameters(model) == expected


def test_count_parameters_skips_frozen_ones() -> None:
    model = build_model(cfg(width=32, depth=1), (64,), 10)
    total = count_parameters(model)
    model.classifier.weight.requires_grad_(False)
    assert count_parameters(model) == total - 32 * 10


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_hidden_linear_has_a_bias_only_without_norm(norm: str) -> None:
    block = build_model(cfg(norm=norm), (1, 8, 8), 10).blocks[0]
    assert (block.linear.bias is not None) == (norm == "none")


def test_block_order_is_linear_norm_activation_dropout() -> None:
    # Layer norm: unlike an eval-mode batch norm at init, it does not commute with tanh.
    block = build_model(cfg(norm="layer", activation="tanh", dropout=0.2), (1, 8, 8), 10).blocks[0]
    assert isinstance(block, MLPBlock)
    kinds = [type(m) for m in block.children()]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.Tanh, nn.Dropout]
    torch.manual_seed(0)
    x = torch.randn(16, 64)
    block.eval()
    torch.testing.assert_close(block(x), torch.tanh(block.norm(block.linear(x))))


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming", "orthogonal", "normal"])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("activation", list(FORMULAS))
def test_output_is_batch_by_classes_for_image_input(init: str, norm: str, activation: str) -> None:
    torch.manual_seed(0)
    model = build_model(cfg(init=init, norm=norm, activation=activation, dropout=0.1), (1, 8, 8), 10)
    out = model(torch.randn(5, 1, 8, 8))
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()


def test_unknown_architecture_names_the_allowed_ones() -> None:
    with pytest.raises(KeyError, match="allowed: mlp, cnn, resnet, lstm, gru, transformer"):
        build_model(ModelConfig.model_construct(arch="perceiver"), (1, 8, 8), 10)


def test_builds_from_a_validated_model_config() -> None:
    model = build_model(ModelConfig(norm="batch", init="kaiming", depth=3), (1, 8, 8), 10)
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert len(model.blocks) == 3
