"""Sequence data (digits_rows, digits_pixels, mnist_rows, marked_pair) through the fast path, per-feature
normalization, and which models may read which data (at `ablate check`)."""

from __future__ import annotations

import pytest
import torch

from ablations.config import DataConfig
from ablations.data import dataset_info, load_dataset
from ablations.data.datasets import feature_stats, normalization
from tests.data_files import write_mnist


def _all_x(split) -> torch.Tensor:
    return torch.cat([x for x, _ in split.batches(10_000)])


def test_digits_as_rows_and_as_pixels_hold_the_same_images() -> None:
    from sklearn.datasets import load_digits

    rows = load_dataset(DataConfig(name="digits_rows", normalize="none"))
    pixels = load_dataset(DataConfig(name="digits_pixels", normalize="none"))
    assert rows.input_shape == (8, 8) and pixels.input_shape == (64, 1)
    assert dataset_info(DataConfig(name="digits_pixels")) == ((64, 1), 10)
    x_rows, x_pixels = _all_x(rows.train), _all_x(pixels.train)
    torch.testing.assert_close(x_rows.reshape(-1, 64, 1), x_pixels)  # same split, pixel t = row t // 8, column t % 8
    images = torch.tensor(load_digits().images, dtype=torch.float32)
    first = x_rows[0]
    assert any(torch.equal(first, img) for img in images), "a training example is a digit, rows as steps"


def test_sequences_are_normalised_per_feature_over_the_training_split() -> None:
    data = load_dataset(DataConfig(name="digits_rows"))
    x = _all_x(data.train)  # (N, 8 steps, 8 features)
    varying = x.std(dim=(0, 1)) > 0
    torch.testing.assert_close(x.mean(dim=(0, 1)), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 1))[varying], torch.ones(int(varying.sum())), atol=1e-3, rtol=0)


def test_feature_stats_leave_constant_features_unscaled() -> None:
    x = torch.randn(50, 4, 3)
    x[:, :, 1] = 7.0  # constant in training: std 1, so an unseen value stays finite
    mean, std = feature_stats(x)
    assert mean[1].item() == pytest.approx(7.0) and std[1].item() == 1.0
    flat = x.reshape(-1, 3)
    torch.testing.assert_close(mean[[0, 2]], flat.mean(0)[[0, 2]])
    torch.testing.assert_close(std[[0, 2]], flat.std(0)[[0, 2]])
    mean, std = normalization(DataConfig(name="digits_rows"), x, None)
    assert mean.shape == std.shape == (1, 3)  # broadcasts over (N, T, F)


def test_images_keep_per_channel_statistics() -> None:
    x = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    mean, std = normalization(DataConfig(name="synthetic"), x, None)
    assert mean.shape == (3, 1, 1)
    torch.testing.assert_close(mean.flatten(), x.double().mean(dim=(0, 2, 3)).float())


def test_marked_pair_labels_depend_on_order() -> None:
    cfg = DataConfig(name="marked_pair", seq_length=12, synthetic_size=400, normalize="none")
    from ablations.data.sequence import _marked_pair

    raw = _marked_pair(cfg)
    assert raw.x.shape == (400, 12, 2) and raw.num_classes == 2
    markers = raw.x[:, :, 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :6].sum(1) == 1).all(), "one mark in each half"
    for x, y in zip(raw.x, raw.y, strict=True):
        first, second = markers_at = torch.nonzero(x[:, 1]).flatten().tolist()
        assert y.item() == int(x[first, 0] > x[second, 0]), markers_at
    assert 0.4 < raw.y.float().mean().item() < 0.6
    data = load_dataset(cfg)
    assert data.input_shape == (12, 2) and len(data.train) + len(data.val) + len(data.test) == 400


def test_mnist_rows_reads_the_mnist_files(tmp_path) -> None:
    write_mnist(tmp_path / "data", n_train=60, n_test=20)
    cfg = DataConfig(name="mnist_rows", root=str(tmp_path / "data"))
    assert dataset_info(cfg) == ((28, 28), 10)
    data = load_dataset(cfg)
    x, _ = next(iter(data.train.batches(8)))
    assert x.shape == (8, 28, 28) and x.dtype == torch.float32
    assert data.train.x.dtype == torch.uint8 and data.train.mean.shape == (1, 28)  # normalized per batch
    assert len(data.test) == 20


def test_missing_mnist_files_are_named_for_mnist_rows(tmp_path) -> None:
    from ablations.data import DataMissingError, require_datasets

    with pytest.raises(DataMissingError, match=r"data.name=mnist_rows \(the MNIST files\): .* not found"):
        require_datasets([DataConfig(name="mnist_rows", root=str(tmp_path / "nowhere"))])
    assert dataset_info(DataConfig(name="mnist_rows", root=str(tmp_path / "nowhere"))) == ((28, 28), 10)


# ---------------------------------------------------------------- through the CLI


SPACE = """
name: seq
pruner: {{name: none}}
data: {data}
model: {model}
train: {{epochs: 1, batch_size: 64, optimizer: adam, lr: 0.003}}
factors: {factors}
"""


def _space(write_space, data: str, model: str, factors: str = "{}") -> str:
    return str(write_space(SPACE.format(data=data, model=model, factors=factors)))


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_conv_nets_refuse_sequences_at_check(ablate, write_space, arch: str) -> None:
    result = ablate("check", _space(write_space, "{name: digits_rows}", f"{{arch: {arch}, depth: 8}}"))
    assert result.code == 2
    assert f"arch {arch} convolves images" in result.err and "digits_rows" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_a_conv_net_level_on_sequences_can_be_excluded(ablate, write_space) -> None:
    factors = "{model.arch: [cnn, lstm], data.name: [digits, digits_rows]}"
    path = _space(write_space, "{name: digits}", "{arch: cnn}", factors)
    assert ablate("check", path).code == 2
    with open(path, "a") as f:
        f.write("exclude: [{model.arch: cnn, data.name: digits_rows}]\n")
    result = ablate("check", path)
    assert result.code == 0, result.err
    assert "cells: 3" in result.out


def test_augmenting_sequences_is_refused(ablate, write_space) -> None:
    result = ablate("check", _space(write_space, "{name: digits_pixels, flip: true}", "{arch: lstm}"))
    assert result.code == 2 and "augment images only" in result.err


def test_check_counts_parameters_of_sequence_models(ablate, write_space) -> None:
    factors = "{norm: [layer, none], model.norm_position: [pre, post]}"
    path = _space(write_space, "{name: marked_pair, seq_length: 10}", "{arch: transformer, width: 16}", factors)
    result = ablate("check", path)
    assert result.code == 0, result.err
    assert "model variants on marked_pair (10, 2)" in result.out
    # pre-LN has one more layer norm (2 x 16 parameters) than post-LN; without norm they are equal
    assert "norm=none model.norm_position=pre" in result.out
    from ablations.config import load_space
    from ablations.models import build_model, count_parameters

    space = load_space(path)
    counts = {
        (n, p): count_parameters(
            build_model(space.trial_config({"model.norm": n, "model.norm_position": p}).model, (10, 2), 2)
        )
        for n in ("layer", "none")
        for p in ("pre", "post")
    }
    assert counts["layer", "pre"] - counts["layer", "post"] == 32
    for count in counts.values():
        assert f"{count:,}" in result.out


def test_sequence_models_read_digit_images_as_rows_end_to_end(ablate, write_space) -> None:
    path = _space(write_space, "{name: digits, subset: 300}", "{arch: gru, width: 16}", "{norm: [layer, batch]}")
    result = ablate("run", path, "--wandb", "disabled")
    assert result.code == 0, result.out + result.err
    assert "failed" not in result.out.split("ran ")[-1]
