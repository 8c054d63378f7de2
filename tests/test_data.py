"""The input pipeline: splits, subsets, normalization, batched augmentation, precision."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ablations.config import DataConfig, ModelConfig, TrainConfig, validate_space
from ablations.data import Augment, load_dataset
from ablations.data.augment import cutout, random_crop
from ablations.data.datasets import channel_stats
from ablations.errors import ConfigError
from ablations.models import build_model
from ablations.train import fit

SYNTH = {"name": "synthetic", "synthetic_shape": (3, 8, 8), "synthetic_size": 400, "synthetic_classes": 4}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.arange(1, 2 * 3 * 6 * 6 + 1, dtype=torch.float32).view(2, 3, 6, 6).repeat(8, 1, 1, 1)
    out = random_crop(x, 2, gen())
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = []
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert len(found) == 1
        shifts.append(found[0])
    assert len(set(shifts)) > 4  # each sample has its own shift
    assert torch.equal(out, random_crop(x, 2, gen()))  # same seed, same crops
    assert not torch.equal(out, random_crop(x, 2, gen(1)))


def test_flip_mirrors_about_half_the_batch_and_keeps_uint8():
    x = torch.randint(0, 256, (200, 3, 5, 5), dtype=torch.uint8, generator=gen())
    out = Augment(flip=True).geometric(x, gen())
    assert out.dtype == torch.uint8
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 70 < sum(flipped) < 130


def test_cutout_zeroes_one_square_clipped_at_the_border():
    x = torch.ones(300, 2, 10, 10)
    out = cutout(x, 4, gen())
    zero = out[:, 0] == 0
    assert torch.equal(zero, out[:, 1] == 0)  # the same square in every channel
    for mask in zero:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert mask.sum() == len(rows) * len(cols)  # a filled rectangle
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
    assert (zero.sum((1, 2)) == 16).float().mean() > 0.3  # many squares lie fully inside
    assert (zero.sum((1, 2)) < 16).any()  # and some are clipped


def test_train_batches_are_augmented_but_evaluation_batches_never():
    data = load_dataset(DataConfig(**SYNTH, crop_padding=2, flip=True, cutout=3))
    plain = load_dataset(DataConfig(**SYNTH))
    assert data.train.x is plain.train.x  # augmentation settings do not reload the data
    assert data.augment == Augment(2, True, 3) and plain.augment == Augment()
    aug = next(data.train.batches(64, gen(), data.augment, gen(5)))[0]
    raw = next(plain.train.batches(64, gen()))[0]
    assert aug.shape == raw.shape and not torch.equal(aug, raw)
    assert torch.equal(next(data.val.batches(64))[0], next(plain.val.batches(64))[0])


def test_splits_subset_and_split_seed():
    a = load_dataset(DataConfig(**SYNTH))
    assert (len(a.train), len(a.val), len(a.test)) == (240, 80, 80)
    assert a.train.x.dtype == torch.uint8 and a.input_shape == (3, 8, 8) and a.num_classes == 4
    b = load_dataset(DataConfig(**SYNTH, split_seed=1))
    assert not torch.equal(a.train.y, b.train.y)
    frac = load_dataset(DataConfig(**SYNTH, subset=0.5))
    count = load_dataset(DataConfig(**SYNTH, subset=100))
    assert (len(frac.train), len(frac.val), len(frac.test)) == (120, 40, 40)
    assert (len(count.train), len(count.val), len(count.test)) == (60, 20, 20)
    images = {tuple(x.flatten().tolist()) for s in (a.train, a.val, a.test) for x in s.x}
    assert len(images) == 400  # disjoint splits that cover the set


def test_train_normalization_gives_zero_mean_unit_std_per_channel():
    data = load_dataset(DataConfig(**SYNTH))
    x = torch.cat([x for x, _ in data.train.batches(1000)])
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std((0, 2, 3)), torch.ones(3), atol=1e-4)
    none = load_dataset(DataConfig(**SYNTH, normalize="none"))
    x = next(none.train.batches(50))[0]
    assert torch.equal(x, next(iter([none.train.x[:50].float() / 255])))


def test_channel_stats_match_torch_on_uint8():
    x = torch.randint(0, 256, (5000, 2, 3, 3), dtype=torch.uint8, generator=gen())
    mean, std = channel_stats(x, chunk=777)
    flat = x.float().permute(1, 0, 2, 3).reshape(2, -1)
    assert torch.allclose(mean, flat.mean(1)) and torch.allclose(std, flat.std(1), rtol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_synthetic_data(precision):
    data = load_dataset(DataConfig(**SYNTH))
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=32, depth=1), data.input_shape, data.num_classes)
    records = list(fit(model, data, TrainConfig(epochs=4, lr=0.05, precision=precision), seed=0))
    assert all(math.isfinite(r.train_loss) for r in records)
    assert records[-1].train_loss < records[0].train_loss and records[-1].val_acc > 0.5


def test_augmented_training_is_reproducible_by_seed():
    data = load_dataset(DataConfig(**SYNTH, crop_padding=1, flip=True, cutout=2))

    def losses(seed: int) -> list[float]:
        torch.manual_seed(0)
        model = build_model(ModelConfig(width=16, depth=1), data.input_shape, data.num_classes)
        return [r.train_loss for r in fit(model, data, TrainConfig(epochs=2), seed=seed)]

    assert losses(1) == losses(1) and losses(1) != losses(2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "synthetic", "normalize": "standard"}, "synthetic has no standard constants"),
        ({"name": "image_folder"}, "image_folder needs data.path"),
        ({"name": "mnist", "in_memory": False}, "in_memory: false streams image folders only"),
        ({"subset": 0}, "a count >= 1"),
        ({"subset": 1.5}, "a fraction in (0, 1]"),
        ({"name": "imagenet"}, "unknown dataset 'imagenet'; allowed: digits"),
    ],
)
def test_bad_data_settings_name_the_key_and_the_fix(data, message):
    with pytest.raises(ConfigError, match="data") as err:
        validate_space({"name": "x", "data": data}, source="space.yaml")
    assert message in str(err.value)


def test_digits_are_scikit_learns_load_digits_read_without_importing_scikit_learn(monkeypatch):
    from sklearn.datasets import load_digits

    from ablations.data import builtin

    bunch = load_digits()
    x, y = builtin.digits_images()
    assert torch.equal(x, torch.tensor(bunch.images, dtype=torch.float32)) and x.dtype == torch.float32
    assert torch.equal(y, torch.tensor(bunch.target)) and y.dtype == torch.long
    # the quickstart's data costs no scikit-learn import (about a second of every sweep's start)
    code = "import sys; from ablations.data.builtin import digits_images as d; d(); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    # should scikit-learn ever move the file, its own loader reads it
    monkeypatch.setattr(builtin, "installed_file", lambda package, *parts: None)
    x2, y2 = builtin.digits_images()
    assert torch.equal(x2, x) and torch.equal(y2, y)
