"""The levels added for the full catalog, each checked numerically against its paper's definition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablations.config import ModelConfig
from ablations.models import INITS, NORMS, build_model
from ablations.models.init import InitContext, activation_gain, layer_output, weighted_layers
from ablations.models.layers import IncompatibleLevel, LayerOptions, group_count, make_activation, make_dropout
from tests.test_models import assert_close_rel, assert_gaussian, features_with_distinct_stats, std

# ---------------------------------------------------------------- norms


def test_instance_norm_normalises_each_sample_and_channel_over_positions() -> None:
    x = features_with_distinct_stats(8, 6, 7, 7)
    y = NORMS["instance"](6, 2)(x)
    per_map = y.reshape(8 * 6, -1)
    torch.testing.assert_close(per_map.mean(1), torch.zeros(48), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_map.std(1, unbiased=False), torch.ones(48), atol=1e-3, rtol=0)


def test_instance_norm_on_a_flat_vector_is_refused() -> None:
    with pytest.raises(IncompatibleLevel, match="spatial positions"):
        NORMS["instance"](16, 0)


def test_group_norm_with_one_group_is_layer_norm_over_c_h_w() -> None:
    x = features_with_distinct_stats(4, 8, 5, 5)
    y = NORMS["group"](8, 2, LayerOptions(groups=1))(x)
    torch.testing.assert_close(y, F.layer_norm(x, x.shape[1:]), atol=1e-5, rtol=0)


def test_group_norm_normalises_each_group_of_channels() -> None:
    x = features_with_distinct_stats(4, 64, 3, 3)
    norm = NORMS["group"](64, 2)
    assert norm.num_groups == 32  # Wu & He 2018's default
    groups = norm(x).reshape(4, 32, -1)
    torch.testing.assert_close(groups.mean(2), torch.zeros(4, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(groups.std(2, unbiased=False), torch.ones(4, 32), atol=1e-3, rtol=0)


@pytest.mark.parametrize(("channels", "groups", "expected"), [(64, 32, 32), (16, 32, 16), (48, 32, 24), (10, 4, 2)])
def test_group_count_is_the_largest_divisor_not_above_g(channels: int, groups: int, expected: int) -> None:
    assert group_count(channels, groups) == expected
    assert NORMS["group"](channels, 2, LayerOptions(groups=groups)).num_groups == expected


def test_norm_groups_comes_from_the_model_config() -> None:
    model = build_model(ModelConfig(arch="cnn", norm="group", norm_groups=4, width=8, depth=3), (1, 8, 8), 10)
    assert {m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)} == {4}


# ---------------------------------------------------------------- activations and dropout


def test_leaky_relu_slope_is_configurable_and_its_gain_follows() -> None:
    model = build_model(ModelConfig(activation="leaky_relu", leaky_relu_slope=0.2, init="kaiming"), (500,), 10)
    act = model.blocks[0].act
    assert act.negative_slope == 0.2
    assert act(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    assert activation_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / (1 + 0.2**2)))
    assert_close_rel(std(model.blocks[0].linear.weight), math.sqrt(2 / 1.04) / math.sqrt(500), rel=0.05)


def test_prelu_slope_is_learned() -> None:
    act = make_activation("prelu")
    y = act(torch.tensor([-2.0, 3.0]))
    y.sum().backward()
    assert act.weight.grad.item() == pytest.approx(-2.0)  # d(a x)/da at x = -2


def test_selu_dropout_is_alpha_dropout_and_keeps_mean_and_variance() -> None:
    model = build_model(ModelConfig(activation="selu", dropout=0.2), (64,), 10)
    assert isinstance(model.blocks[0].dropout, nn.AlphaDropout)
    torch.manual_seed(0)
    x = torch.randn(400_000)
    y = make_dropout(0.2, "selu").train()(x)
    assert abs(y.mean().item()) < 0.01 and abs(y.var().item() - 1) < 0.01
    plain = make_dropout(0.2, "relu").train()(x)
    assert plain.var().item() > 1.2  # inverted dropout inflates the variance: why SELU needs alpha dropout


def test_alpha_dropout_can_be_turned_off() -> None:
    model = build_model(ModelConfig(activation="selu", dropout=0.2, alpha_dropout=False), (64,), 10)
    assert type(model.blocks[0].dropout) is nn.Dropout


def test_channel_dropout_drops_whole_feature_maps() -> None:
    torch.manual_seed(0)
    y = make_dropout(0.5, "relu", channels=True).train()(torch.ones(64, 32, 4, 4))
    per_map = y.reshape(64 * 32, 16)
    zero_maps = (per_map == 0).all(1)
    assert ((per_map == 0).any(1) == zero_maps).all(), "a map is dropped whole or not at all"
    assert abs(zero_maps.float().mean().item() - 0.5) < 0.05


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_dropout_placement_in_blocks_or_before_the_classifier(arch: str) -> None:
    depth = 3 if arch == "cnn" else 8
    blocks = build_model(ModelConfig(arch=arch, depth=depth, width=8, dropout=0.3), (1, 8, 8), 10)
    head = build_model(
        ModelConfig(arch=arch, depth=depth, width=8, dropout=0.3, dropout_placement="classifier"), (1, 8, 8), 10
    )
    assert sum(isinstance(m, nn.Dropout2d) for m in blocks.modules()) == 3
    assert not any(isinstance(m, nn.Dropout) for m in blocks.modules())
    assert [type(m) for m in head.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))] == [nn.Dropout]


# ---------------------------------------------------------------- inits

IN, WIDTH, CLASSES = 2000, 250, 1000


def hidden(init: str, activation: str = "relu", **options: object) -> nn.Linear:
    torch.manual_seed(0)
    config = ModelConfig(init=init, activation=activation, width=WIDTH, depth=1, **options)
    return build_model(config, (IN,), CLASSES).blocks[0].linear


def assert_uniform(w: torch.Tensor, bound: float) -> None:
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound
    # A uniform's mass is flat: half of it lies within half the bound.
    assert abs((w.abs() < bound / 2).float().mean().item() - 0.5) < 0.01


def test_zeros_init_zeroes_every_weight_and_bias() -> None:
    model = build_model(ModelConfig(init="zeros", norm="none"), (64,), 10)
    for layer in weighted_layers(model):
        assert not layer.weight.any() and not layer.bias.any()


def test_normal_std_is_configurable() -> None:
    assert_close_rel(std(hidden("normal", normal_std=0.05).weight), 0.05)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_xavier_uniform_bound_is_sqrt_6_over_fan_in_plus_fan_out(activation: str) -> None:
    w = hidden("xavier_uniform", activation).weight.detach()
    assert_uniform(w, math.sqrt(6 / (IN + WIDTH)))
    assert_close_rel(std(w), math.sqrt(2 / (IN + WIDTH)))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_kaiming_uniform_bound_is_gain_sqrt_3_over_fan_in(activation: str) -> None:
    w = hidden("kaiming_uniform", activation).weight.detach()
    gain = activation_gain(activation)
    assert_uniform(w, gain * math.sqrt(3 / IN))
    assert_close_rel(std(w), gain / math.sqrt(IN))


def test_short_names_are_the_normal_variants() -> None:
    assert INITS["xavier"] is INITS["xavier_normal"] and INITS["kaiming"] is INITS["kaiming_normal"]
    w = hidden("kaiming_normal").weight.detach()
    assert_close_rel(std(w), math.sqrt(2 / IN))
    assert_gaussian(w)
    assert_close_rel(std(hidden("xavier_normal", "tanh").weight), math.sqrt(2 / (IN + WIDTH)))


@pytest.mark.parametrize(("arch", "activation"), [("mlp", "tanh"), ("mlp", "relu"), ("cnn", "relu")])
def test_lsuv_gives_every_layer_unit_output_variance_on_the_batch(arch: str, activation: str) -> None:
    torch.manual_seed(0)
    batch = torch.randn(128, 1, 8, 8) * 3 + 1
    config = ModelConfig(arch=arch, init="lsuv", activation=activation, width=32, depth=5, lsuv_tolerance=0.05)
    model = build_model(config, (1, 8, 8), 10, batch).eval()
    with torch.no_grad():
        variances = [layer_output(model, layer, batch).var().item() for layer in weighted_layers(model)]
    assert len(variances) == 6
    assert all(abs(v - 1) < 0.05 for v in variances), variances


def test_lsuv_needs_a_batch() -> None:
    with pytest.raises(ValueError, match="batch of real data"):
        build_model(ModelConfig(init="lsuv"), (64,), 10)


def test_lsuv_starts_from_orthonormal_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    model[2].is_classifier = True
    INITS["lsuv"](model, InitContext("tanh", batch=torch.randn(256, 64), lsuv_max_iters=1))
    w = model[0].weight.detach().double()
    gram = w @ w.T
    # Scaled once, the rows stay orthogonal with one common norm.
    torch.testing.assert_close(gram, gram[0, 0] * torch.eye(32, dtype=torch.float64), atol=1e-6, rtol=0)
