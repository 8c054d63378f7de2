"""lstm, gru and transformer: their blocks computed by hand on tiny inputs, norm placement, rms
norm, parameter counts, the image-as-rows view, compatibility rules and diagnostics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablations.config import ModelConfig
from ablations.diagnostics import Diagnostics
from ablations.models import NORMS, build_model, count_parameters, incompatibilities
from ablations.models.layers import NORM_TYPES, LayerOptions
from ablations.models.rnn import GRULayer, LSTMLayer
from ablations.models.steps import StepBatchNorm, TokenBatchNorm, as_steps
from ablations.models.transformer import EncoderBlock, sinusoidal_positions

EPS = 1e-5


def seq_cfg(**kw) -> ModelConfig:
    base = {"arch": "transformer", "width": 8, "depth": 2, "heads": 2, "ff_mult": 2, "residual": True}
    return ModelConfig(**(base | kw))


# ---------------------------------------------------------------- rms norm


def test_rms_norm_is_x_over_root_mean_square_times_gain() -> None:
    torch.manual_seed(0)
    norm = NORMS["rms"](6, 0)
    nn.init.normal_(norm.weight)
    x = torch.randn(4, 6) * 3 + 1
    expected = x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + EPS) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    assert not hasattr(norm, "bias") or norm.bias is None  # no shift, no mean subtraction


def test_rms_norm_on_feature_maps_is_over_c_h_w_with_a_gain_per_channel() -> None:
    torch.manual_seed(0)
    norm = NORMS["rms"](3, 2)
    nn.init.normal_(norm.weight)
    x = torch.randn(2, 3, 4, 5) + 2
    rms = torch.sqrt(x.square().mean(dim=(1, 2, 3), keepdim=True) + EPS)
    torch.testing.assert_close(norm(x), x / rms * norm.weight.view(1, 3, 1, 1))


def test_a_linear_before_rms_norm_keeps_its_bias() -> None:
    # rms norm does not subtract the mean, so a bias before it is not redundant (unlike layer/batch).
    mlp = build_model(ModelConfig(norm="rms", width=8), (4,), 3)
    assert mlp.blocks[0].linear.bias is not None
    assert build_model(ModelConfig(norm="layer", width=8), (4,), 3).blocks[0].linear.bias is None


# ---------------------------------------------------------------- transformer blocks by hand


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + EPS) * norm.weight + norm.bias


def _attention(x: torch.Tensor, block: EncoderBlock) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_head)) V per head, heads concatenated, then the output projection."""
    w, b = block.attn.qkv.weight, block.attn.qkv.bias
    d = x.shape[-1]
    heads = block.attn.heads
    dh = d // heads
    q, k, v = (x @ w[i * d : (i + 1) * d].T + b[i * d : (i + 1) * d] for i in range(3))
    outs = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(dh)
        outs.append(torch.softmax(scores, dim=-1) @ v[..., sl])
    return torch.cat(outs, dim=-1) @ block.attn.out.weight.T + block.attn.out.bias


def _ff(x: torch.Tensor, block: EncoderBlock) -> torch.Tensor:
    hidden = F.gelu(x @ block.ff.linear1.weight.T + block.ff.linear1.bias)
    return hidden @ block.ff.linear2.weight.T + block.ff.linear2.bias


def _block(position: str, residual: bool = True) -> EncoderBlock:
    torch.manual_seed(0)
    block = EncoderBlock(
        seq_cfg(norm="layer", norm_position=position, activation="gelu", residual=residual), LayerOptions(), 0.0
    )
    for norm in (block.attn_norm, block.ff_norm):  # non-trivial gains and shifts
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    return block.eval()


def test_post_ln_block_is_vaswani_et_al() -> None:
    """x1 = LN(x + Attn(x)); out = LN(x1 + FF(x1))."""
    block = _block("post")
    x = torch.randn(2, 3, 8)
    x1 = _layer_norm(x + _attention(x, block), block.attn_norm)
    expected = _layer_norm(x1 + _ff(x1, block), block.ff_norm)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


def test_pre_ln_block_is_xiong_et_al() -> None:
    """x1 = x + Attn(LN(x)); out = x1 + FF(LN(x1))."""
    block = _block("pre")
    x = torch.randn(2, 3, 8)
    x1 = x + _attention(_layer_norm(x, block.attn_norm), block)
    expected = x1 + _ff(_layer_norm(x1, block.ff_norm), block)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position", ["pre", "post"])
def test_plain_block_drops_only_the_sum(position: str) -> None:
    block = _block(position, residual=False)
    x = torch.randn(2, 3, 8)
    if position == "pre":
        x1 = _attention(_layer_norm(x, block.attn_norm), block)
        expected = _ff(_layer_norm(x1, block.ff_norm), block)
    else:
        x1 = _layer_norm(_attention(x, block), block.attn_norm)
        expected = _layer_norm(_ff(x1, block), block.ff_norm)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


def test_pre_ln_has_a_final_norm_before_the_head_and_post_ln_has_none() -> None:
    pre = build_model(seq_cfg(norm="layer", norm_position="pre"), (5, 3), 4)
    post = build_model(seq_cfg(norm="layer", norm_position="post"), (5, 3), 4)
    assert isinstance(pre.final_norm, nn.LayerNorm) and isinstance(post.final_norm, nn.Identity)
    assert sum(isinstance(m, nn.LayerNorm) for m in pre.modules()) == 2 * 2 + 1
    assert sum(isinstance(m, nn.LayerNorm) for m in post.modules()) == 2 * 2


@pytest.mark.parametrize("arch", ["transformer", "lstm", "gru"])
@pytest.mark.parametrize("position", ["pre", "post"])
def test_norm_none_builds_no_normalization_module(arch: str, position: str) -> None:
    model = build_model(
        seq_cfg(arch=arch, norm="none", norm_position=position, residual=arch == "transformer"), (5, 3), 4
    )
    assert not [m for m in model.modules() if isinstance(m, (*NORM_TYPES, StepBatchNorm))]


@pytest.mark.parametrize("norm", ["layer", "batch", "rms", "none"])
@pytest.mark.parametrize("position", ["pre", "post"])
def test_plain_and_residual_transformers_have_the_same_parameters(norm: str, position: str) -> None:
    plain = build_model(seq_cfg(norm=norm, norm_position=position, residual=False), (5, 3), 4)
    residual = build_model(seq_cfg(norm=norm, norm_position=position, residual=True), (5, 3), 4)
    assert count_parameters(plain) == count_parameters(residual) > 0


def test_transformer_parameter_count_formula() -> None:
    d, f, t, c, depth, mult = 8, 3, 5, 4, 2, 2
    model = build_model(seq_cfg(norm="layer", pooling="cls"), (t, f), c)
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * mult * d + mult * d) + (mult * d * d + d) + 2 * 2 * d
    expected = (f * d + d) + d + (t + 1) * d + depth * block + 2 * d + (d * c + c)  # embed, cls, positions, final norm
    assert count_parameters(model) == expected


def test_batch_norm_in_a_transformer_pools_batch_and_positions() -> None:
    norm = build_model(seq_cfg(norm="batch"), (5, 3), 4).blocks[0].attn_norm
    assert isinstance(norm, TokenBatchNorm)
    x = torch.randn(6, 5, 8) * 4 + 2
    y = norm.train()(x)
    torch.testing.assert_close(y.mean(dim=(0, 1)), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 1), unbiased=False), torch.ones(8), atol=1e-3, rtol=0)


def test_sinusoidal_positions_formula() -> None:
    pe = sinusoidal_positions(7, 6)
    for t in range(7):
        for i in range(3):
            angle = t / 10000 ** (2 * i / 6)
            assert pe[t, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[t, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_without_positions_mean_pooling_is_blind_to_order() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 6, 2)
    perm = torch.randperm(6)
    blind = build_model(seq_cfg(positions="none"), (6, 2), 2).eval()
    torch.testing.assert_close(blind(x), blind(x[:, perm]), atol=1e-5, rtol=1e-5)
    for positions, pooling in [("learned", "mean"), ("sinusoidal", "mean"), ("none", "cls")]:
        model = build_model(seq_cfg(positions=positions, pooling=pooling), (6, 2), 2).eval()
        out = model(x)
        if positions == "none":  # a class token alone is order-blind too: it attends to a set
            torch.testing.assert_close(out, model(x[:, perm]), atol=1e-5, rtol=1e-5)
        else:
            assert not torch.allclose(out, model(x[:, perm]), atol=1e-4)


def test_zero_init_residual_makes_pre_ln_blocks_identities() -> None:
    model = build_model(seq_cfg(norm="layer", zero_init_residual=True, init="kaiming"), (5, 3), 4).eval()
    x = torch.randn(2, 5, 8)
    for block in model.blocks:
        torch.testing.assert_close(block(x), x)


# ---------------------------------------------------------------- recurrent nets


def test_lstm_layer_matches_torch_lstm() -> None:
    torch.manual_seed(0)
    ours = LSTMLayer(3, 5, "tanh", LayerOptions())
    ref = nn.LSTM(3, 5, batch_first=True)
    with torch.no_grad():
        ours.input.weight.copy_(ref.weight_ih_l0)
        ours.input.bias.copy_(ref.bias_ih_l0 + ref.bias_hh_l0)
        ours.recurrent.weight.copy_(ref.weight_hh_l0)
    x = torch.randn(4, 7, 3)
    torch.testing.assert_close(ours(x), ref(x)[0], atol=1e-5, rtol=1e-5)


def test_gru_layer_matches_torch_gru() -> None:
    torch.manual_seed(0)
    ours = GRULayer(3, 5, "tanh", LayerOptions())
    ref = nn.GRU(3, 5, batch_first=True)
    with torch.no_grad():
        ours.input.weight.copy_(ref.weight_ih_l0)
        ours.input.bias.copy_(ref.bias_ih_l0)
        ours.recurrent.weight.copy_(ref.weight_hh_l0)
        ours.recurrent.bias.copy_(ref.bias_hh_l0)
    x = torch.randn(4, 7, 3)
    torch.testing.assert_close(ours(x), ref(x)[0], atol=1e-5, rtol=1e-5)


def test_the_activation_is_the_cells_input_and_output_nonlinearity() -> None:
    torch.manual_seed(0)
    cell = LSTMLayer(2, 3, "relu", LayerOptions())
    x = torch.randn(2, 1, 2)
    i, f, g, o = cell.input(x[:, 0]).chunk(4, dim=1)
    c = torch.sigmoid(i) * torch.relu(g)
    torch.testing.assert_close(cell(x)[:, 0], torch.sigmoid(o) * torch.relu(c))


@pytest.mark.parametrize("arch", ["lstm", "gru"])
@pytest.mark.parametrize("norm", ["layer", "rms", "batch"])
def test_recurrent_norm_acts_on_each_layers_per_step_outputs(arch: str, norm: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, norm=norm, width=6, depth=2), (5, 3), 4).train()
    x = torch.randn(8, 5, 3)
    h1 = model.norms[0](model.layers[0](x))
    h2 = model.norms[1](model.layers[1](h1))
    torch.testing.assert_close(model(x), model.classifier(h2[:, -1]))
    raw = model.layers[0](x)
    if norm == "layer":  # each step of each example: zero mean, unit variance over the units
        expected = (raw - raw.mean(-1, keepdim=True)) / raw.var(-1, unbiased=False, keepdim=True).add(EPS).sqrt()
        torch.testing.assert_close(h1, expected)
    elif norm == "rms":
        rms = raw.square().mean(-1, keepdim=True).add(EPS).sqrt()
        torch.testing.assert_close(h1, raw / rms * model.norms[0].weight)
    else:  # statistics per time step and unit, over the batch only (Cooijmans et al. 2017)
        assert isinstance(model.norms[0], StepBatchNorm)
        expected = (raw - raw.mean(0)) / raw.var(0, unbiased=False).add(EPS).sqrt()
        torch.testing.assert_close(h1, expected)
        pooled = (raw - raw.mean((0, 1))) / raw.std((0, 1), unbiased=False)  # what one statistic would give
        assert not torch.allclose(h1, pooled, atol=1e-2)


def test_layer_norm_inside_the_lstm_cell_is_ba_et_al() -> None:
    """gates = LN_x(W_x x_t + b) + LN_h(W_h h_{t-1}); h_t = o tanh(LN_c(c_t)) (Ba et al. 2016, sec. 3.1)."""
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(arch="lstm", norm="layer", recurrent_norm="gates", width=4, depth=1, activation="tanh"), (3, 2), 2
    )
    cell = model.layers[0]
    assert isinstance(model.norms[0], nn.Identity), "gates placement leaves the outputs alone"
    for norm in (cell.norm_x, cell.norm_h, cell.norm_c):
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    x = torch.randn(5, 3, 2)
    h = c = torch.zeros(5, 4)
    expected = []
    for t in range(3):
        gates = _layer_norm(x[:, t] @ cell.input.weight.T + cell.input.bias, cell.norm_x) + _layer_norm(
            h @ cell.recurrent.weight.T, cell.norm_h
        )
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(_layer_norm(c, cell.norm_c))
        expected.append(h)
    torch.testing.assert_close(cell(x), torch.stack(expected, dim=1), atol=1e-5, rtol=1e-5)


def test_batch_norm_inside_the_gru_cell_keeps_statistics_per_step() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="gru", norm="batch", recurrent_norm="gates", width=4, depth=1), (3, 2), 2)
    cell = model.layers[0].train()
    assert isinstance(cell.norm_h, StepBatchNorm) and cell.norm_h.stats.running_mean.shape == (3 * 12,)
    x = torch.randn(16, 3, 2) * 3 + 1
    cell(x)
    running = cell.norm_h.stats.running_mean.view(3, 12)
    # h_0 = 0: step 0's recurrent term is the bias for every example; momentum 0.1 moves the mean there
    torch.testing.assert_close(running[0], 0.1 * cell.recurrent.bias.detach())
    assert running[1].abs().sum() > 0 and not torch.allclose(running[1], running[2])
    h = torch.randn(16, 12)
    y = cell.norm_h(h, 2)
    torch.testing.assert_close(y, (h - h.mean(0)) / h.var(0, unbiased=False).add(EPS).sqrt())


def test_inits_reach_the_recurrent_weights() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="lstm", init="kaiming", activation="tanh", width=256, depth=1), (4, 256), 3)
    w = model.layers[0].recurrent.weight
    assert w.std().item() == pytest.approx(nn.init.calculate_gain("tanh") / math.sqrt(256), rel=0.05)
    zeros = build_model(ModelConfig(arch="gru", init="zeros"), (4, 3), 3)
    assert all(not p.any() for n, p in zeros.named_parameters() if "norm" not in n)


@pytest.mark.parametrize("arch", ["lstm", "gru", "transformer"])
def test_an_image_is_read_as_its_rows(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(seq_cfg(arch=arch, residual=arch == "transformer"), (2, 4, 3), 5).eval()
    x = torch.randn(3, 2, 4, 3)
    rows = x.permute(0, 2, 1, 3).reshape(3, 4, 6)  # step h: channel 0's row h, then channel 1's
    torch.testing.assert_close(as_steps(x), rows)
    torch.testing.assert_close(model(x), model(rows))


# ---------------------------------------------------------------- rules and diagnostics


@pytest.mark.parametrize(
    ("cfg", "keys", "words"),
    [
        ({"arch": "lstm", "norm": "instance"}, ("model.norm", "model.arch"), "spatial positions"),
        ({"arch": "transformer", "norm": "group"}, ("model.norm", "model.arch"), "spatial positions"),
        ({"arch": "gru", "residual": True}, ("model.residual", "model.arch"), "transformer"),
        ({"arch": "transformer", "width": 10, "heads": 4}, ("model.heads", "model.width", "model.arch"), "multiple"),
    ],
)
def test_incompatible_sequence_configs_are_named(cfg: dict, keys: tuple, words: str) -> None:
    found = incompatibilities(ModelConfig(**cfg))
    assert [k for k, _ in found] == [keys]
    assert words in found[0][1]


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_diagnostics_cover_repeated_cells_and_norm_outputs(arch: str) -> None:
    torch.manual_seed(0)
    cfg = seq_cfg(arch=arch, norm="layer", activation="relu", residual=arch == "transformer")
    model = build_model(cfg, (6, 3), 4)
    probe = Diagnostics(model, torch.randn(16, 6, 3), torch.randint(0, 4, (16,)))
    scalars = probe.at_init()
    record = probe.record()
    if arch == "lstm":  # 2 layers x (cell, output) activations, each called at 6 steps
        assert record["layers"] == [f"layers.{i}.{a}" for i in range(2) for a in ("cell_act", "out_act")]
        assert record["norms"] == ["norms.0", "norms.1"]
    else:
        assert record["layers"] == ["blocks.0.ff.act", "blocks.1.ff.act"]
        assert record["norms"][-1] == "final_norm" and len(record["norms"]) == 5
    assert all(s == pytest.approx(1.0, abs=0.01) for s in record["init"]["norm_std"])  # layer norm, gain 1
    assert len(record["init"]["grad_norm"]) == len(record["weights"]) and all(record["init"]["grad_norm"])
    assert f"init/norm_std/{record['norms'][0]}" in scalars
    # relu's dead fraction is per unit (the last dim), not per step
    act = torch.zeros(4, 6, 8)
    act[0, 0, :3] = 1.0
    from ablations.diagnostics import dead_fraction

    assert dead_fraction(act, -1) == pytest.approx(5 / 8)
    assert dead_fraction(act, 1) == pytest.approx(5 / 6)
