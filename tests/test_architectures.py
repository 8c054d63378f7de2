"""mlp (plain/residual), VGG-style cnn and CIFAR ResNet: shapes, parameter counts, residual
counterparts and zero-init residual branches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablations.config import ModelConfig
from ablations.models import build_model, count_parameters
from ablations.models.cnn import stage_sizes
from ablations.models.mlp import MLPBlock
from ablations.models.resnet import BasicBlock, blocks_per_stage

# He et al. 2015, Table 6 (CIFAR-10): layers -> parameters.
TABLE_6 = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}


@pytest.mark.parametrize("depth", TABLE_6)
def test_resnet_parameter_counts_match_he_et_al_table_6(depth: int) -> None:
    residual = build_model(ModelConfig(arch="resnet", depth=depth, norm="batch", residual=True), (3, 32, 32), 10)
    plain = build_model(ModelConfig(arch="resnet", depth=depth, norm="batch", residual=False), (3, 32, 32), 10)
    params = count_parameters(residual)
    assert abs(params - TABLE_6[depth]) / TABLE_6[depth] < 0.02, params
    assert count_parameters(plain) == params, "option A shortcuts add no parameters"
    convs = [m for m in residual.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == depth, "6n+2 weighted layers: 6n+1 convs and the classifier"


def test_resnet_shapes_and_stages() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="resnet", depth=8, norm="batch", residual=True), (3, 32, 32), 10)
    sizes = []
    model.blocks.register_forward_hook(lambda m, a, out: sizes.append(tuple(out.shape[1:])))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sizes == [(64, 8, 8)]
    assert [b.conv1.out_channels for b in model.blocks] == [16, 32, 64]
    # Digits-sized inputs work too.
    assert build_model(ModelConfig(arch="resnet", depth=8), (1, 8, 8), 10)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("depth", [7, 9, 21])
def test_resnet_depth_must_be_6n_plus_2(depth: int) -> None:
    with pytest.raises(ValueError, match="6n\\+2"):
        blocks_per_stage(depth)


def test_option_a_shortcut_subsamples_and_pads_channels() -> None:
    block = BasicBlock(16, 32, 2, ModelConfig(residual=True), _opts(), 0.0)
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()


def _opts():
    from ablations.models.layers import LayerOptions

    return LayerOptions()


@pytest.mark.parametrize("norm", ["batch", "none", "group"])
def test_zero_init_residual_blocks_are_identity_maps(norm: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(arch="resnet", depth=14, norm=norm, residual=True, zero_init_residual=True, init="kaiming")
    model = build_model(config, (3, 16, 16), 10).train()
    identity_shaped = [b for b in model.blocks if b.conv1.stride == (1, 1)]
    assert len(identity_shaped) == 4  # 2 per stage, less the first of stages 2 and 3
    for block in identity_shaped:
        x = torch.rand(4, block.conv1.in_channels, 8, 8)  # a ReLU's output: non-negative
        torch.testing.assert_close(block(x), x)
    mlp_norm = "layer" if norm == "group" else norm
    mlp = build_model(ModelConfig(norm=mlp_norm, residual=True, zero_init_residual=True, depth=3, width=16), (8,), 10)
    h = torch.rand(5, 16)
    for block in list(mlp.blocks)[1:]:
        torch.testing.assert_close(block(h), h)


def test_without_zero_init_the_blocks_are_not_identities() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="resnet", depth=8, norm="batch", residual=True), (3, 16, 16), 10)
    x = torch.rand(4, 16, 16, 16)
    assert (model.blocks[0](x) - x).abs().max() > 0.1


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("depth", [1, 4])
def test_residual_mlp_has_the_same_layers_and_parameters_as_the_plain_one(norm: str, depth: int) -> None:
    plain = build_model(ModelConfig(norm=norm, depth=depth, width=16), (1, 8, 8), 10)
    residual = build_model(ModelConfig(norm=norm, depth=depth, width=16, residual=True), (1, 8, 8), 10)
    assert count_parameters(plain) == count_parameters(residual)
    assert [type(m) for m in plain.modules()] == [type(m) for m in residual.modules()]
    assert [b.residual for b in residual.blocks] == [False] + [True] * (depth - 1)


def test_residual_mlp_block_adds_its_input_before_the_activation() -> None:
    torch.manual_seed(0)
    block = MLPBlock(8, 8, "none", "tanh", 0.0, residual=True)
    x = torch.randn(3, 8)
    torch.testing.assert_close(block(x), torch.tanh(x + block.linear(x)))


@pytest.mark.parametrize(("depth", "sizes"), [(1, [1]), (3, [1, 1, 1]), (7, [3, 2, 2]), (9, [3, 3, 3])])
def test_cnn_depth_is_the_number_of_convs_over_three_stages(depth: int, sizes: list[int]) -> None:
    assert stage_sizes(depth) == sizes
    model = build_model(ModelConfig(arch="cnn", depth=depth, width=8, norm="batch"), (1, 8, 8), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth and all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [8 * 2**s for s, n in enumerate(sizes) for _ in range(n)]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_cnn_parameter_count_formula() -> None:
    model = build_model(ModelConfig(arch="cnn", depth=3, width=8, norm="none"), (3, 32, 32), 10)
    expected = (3 * 9 * 8 + 8) + (8 * 9 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 10 + 10)
    assert count_parameters(model) == expected


LEVELS = [("kaiming", n) for n in ("none", "batch", "layer", "instance", "group")] + [
    (i, "batch") for i in ("zeros", "normal", "xavier_uniform", "kaiming_uniform", "orthogonal", "lsuv")
]


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
@pytest.mark.parametrize(("init", "norm"), LEVELS)
def test_conv_nets_build_with_every_init_and_norm(arch: str, init: str, norm: str) -> None:
    torch.manual_seed(0)
    batch = torch.randn(16, 1, 8, 8)
    config = ModelConfig(arch=arch, depth=8 if arch == "resnet" else 3, width=8, init=init, norm=norm, dropout=0.1)
    out = build_model(config, (1, 8, 8), 10, batch)(batch)
    assert out.shape == (16, 10) and torch.isfinite(out).all()
