"""Stacked LSTM and GRU classifiers whose cells are built from nn.Linear layers, so every init,
LSUV and the per-layer diagnostics act on them as on any other model.

Each of `depth` recurrent layers of `width` units is followed, at every time step, by the norm
level, then dropout (between layers only: the recurrent connections are never dropped, Zaremba
et al. 2014). The classifier reads the last step of the last layer.

Where the norm acts is `model.recurrent_norm`:
- `outputs` (default): on each layer's per-step outputs h_t, between layers; the cell is a plain
  LSTM/GRU.
- `gates`: inside the cell, as in Ba et al. 2016's layer-normalised LSTM/GRU (sec. 3.1) and
  Cooijmans et al. 2017's batch-normalised LSTM: the input and the recurrent contributions to the
  gates are normalised separately, N_x(W_x x_t) + N_h(W_h h_{t-1}), and (LSTM) the cell state before
  the output nonlinearity, h_t = o act(N_c(c_t)).
`layer` and `rms` normalise over the units of each step; `batch` keeps statistics per time step,
with one scale and shift per unit (Cooijmans et al. 2017).

`activation` is the cell's input and output nonlinearity, tanh in the standard cells (Greff et al.
2017, "LSTM: A Search Space Odyssey", ablate exactly these); the gates stay sigmoids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ablations.models.init import mark_classifier
from ablations.models.layers import LayerOptions, make_activation, make_dropout
from ablations.models.steps import as_steps, at_step, sequence_norm, sequence_shape

if TYPE_CHECKING:
    from ablations.config import ModelConfig


class LSTMLayer(nn.Module):
    """LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000), PyTorch's gate order:
    i, f, g, o = split(N_x(W_x x_t + b) + N_h(W_h h_{t-1})); c_t = f c_{t-1} + i act(g);
    h_t = o act(N_c(c_t)). The norms N are the identity unless `norm` is given (gates placement)."""

    def __init__(
        self, in_features: int, hidden: int, activation: str, opts: LayerOptions, norm: str = "none", steps: int = 1
    ):
        super().__init__()
        self.hidden = hidden
        self.input = nn.Linear(in_features, 4 * hidden)
        self.recurrent = nn.Linear(hidden, 4 * hidden, bias=False)
        self.norm_x = sequence_norm(norm, 4 * hidden, steps, opts)
        self.norm_h = sequence_norm(norm, 4 * hidden, steps, opts)
        self.norm_c = sequence_norm(norm, hidden, steps, opts)
        self.cell_act = make_activation(activation, opts)
        self.out_act = make_activation(activation, opts)

    def forward(self, x: Tensor) -> Tensor:
        projected = self.norm_x(self.input(x))  # all steps at once; only the recurrent part must loop
        h = c = x.new_zeros(x.shape[0], self.hidden)
        outputs = []
        for t in range(x.shape[1]):
            i, f, g, o = (projected[:, t] + at_step(self.norm_h, self.recurrent(h), t)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.cell_act(g)
            h = torch.sigmoid(o) * self.out_act(at_step(self.norm_c, c, t))
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class GRULayer(nn.Module):
    """GRU (Cho et al. 2014), PyTorch's form: with (xr, xz, xn) = N_x(W_x x_t + b) and
    (hr, hz, hn) = N_h(W_h h_{t-1} + b_h), r = sigmoid(xr + hr), z = sigmoid(xz + hz),
    n = act(xn + r hn), h_t = (1 - z) n + z h_{t-1}. N is the identity unless `norm` is given."""

    def __init__(
        self, in_features: int, hidden: int, activation: str, opts: LayerOptions, norm: str = "none", steps: int = 1
    ):
        super().__init__()
        self.hidden = hidden
        self.input = nn.Linear(in_features, 3 * hidden)
        self.recurrent = nn.Linear(hidden, 3 * hidden)
        self.norm_x = sequence_norm(norm, 3 * hidden, steps, opts)
        self.norm_h = sequence_norm(norm, 3 * hidden, steps, opts)
        self.cell_act = make_activation(activation, opts)

    def forward(self, x: Tensor) -> Tensor:
        projected = self.norm_x(self.input(x))
        h = x.new_zeros(x.shape[0], self.hidden)
        outputs = []
        for t in range(x.shape[1]):
            xr, xz, xn = projected[:, t].chunk(3, dim=1)
            hr, hz, hn = at_step(self.norm_h, self.recurrent(h), t).chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * self.cell_act(xn + r * hn) + z * h
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class RecurrentNet(nn.Module):
    """`depth` recurrent layers, each followed by norm and dropout per step; a Linear on the last step."""

    def __init__(self, cell: type[nn.Module], input_shape: tuple[int, ...], num_classes: int, cfg: ModelConfig):
        super().__init__()
        opts = LayerOptions.of(cfg)
        steps, features = sequence_shape(input_shape)
        block_p = cfg.dropout if cfg.dropout_placement == "blocks" else 0.0
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.dropouts = nn.ModuleList()
        inside = cfg.norm if cfg.recurrent_norm == "gates" else "none"
        outside = cfg.norm if cfg.recurrent_norm == "outputs" else "none"
        for i in range(cfg.depth):
            self.layers.append(cell(features if i == 0 else cfg.width, cfg.width, cfg.activation, opts, inside, steps))
            self.norms.append(sequence_norm(outside, cfg.width, steps, opts))
            self.dropouts.append(make_dropout(block_p if i < cfg.depth - 1 else 0.0, cfg.activation, opts))
        head_p = cfg.dropout if cfg.dropout_placement == "classifier" else 0.0
        self.dropout = make_dropout(head_p, cfg.activation, opts)
        self.classifier = mark_classifier(nn.Linear(cfg.width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = as_steps(x)
        for layer, norm, dropout in zip(self.layers, self.norms, self.dropouts, strict=True):
            x = dropout(norm(layer(x)))
        return self.classifier(self.dropout(x[:, -1]))


def build_lstm(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> RecurrentNet:
    """Stacked LSTM (Hochreiter & Schmidhuber 1997): `depth` layers of `width` units, norm per step
    on the outputs or inside the cell (Ba et al. 2016; Cooijmans et al. 2017)."""
    return RecurrentNet(LSTMLayer, input_shape, num_classes, cfg)


def build_gru(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> RecurrentNet:
    """Stacked GRU (Cho et al. 2014): `depth` layers of `width` units, norm per step on the outputs
    or inside the cell (Ba et al. 2016)."""
    return RecurrentNet(GRULayer, input_shape, num_classes, cfg)
