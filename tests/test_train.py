from __future__ import annotations

import math

import torch

from ablations.config import DataConfig, ModelConfig, TrainConfig
from ablations.data import load_dataset
from ablations.models import build_model
from ablations.train import evaluate, fit


def test_digits_split_is_fixed_by_split_seed_and_disjoint():
    a, b = load_dataset(DataConfig()), load_dataset(DataConfig())
    assert torch.equal(a.train.x, b.train.x)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert (len(a.val), len(a.test)) == (359, 359)
    other = load_dataset(DataConfig(split_seed=1))
    assert not torch.equal(a.train.y, other.train.y)
    assert abs(a.train.x.mean().item()) < 1e-5 and abs(a.train.x.std().item() - 1) < 1e-4


def test_training_learns_digits_and_records_every_epoch():
    torch.manual_seed(0)
    data = load_dataset(DataConfig())
    model = build_model(ModelConfig(width=32, depth=1, init="kaiming"), data.input_shape, data.num_classes)
    records = list(fit(model, data, TrainConfig(epochs=5, lr=0.05), seed=0))
    assert [r.epoch for r in records] == [1, 2, 3, 4, 5]
    assert records[-1].train_loss < records[0].train_loss
    assert records[-1].val_acc > 0.9
    assert evaluate(model, data.test)[1] > 0.9


def test_same_seed_same_run():
    data = load_dataset(DataConfig())

    def final_loss() -> float:
        torch.manual_seed(3)
        model = build_model(ModelConfig(width=16), data.input_shape, data.num_classes)
        return list(fit(model, data, TrainConfig(epochs=2), seed=3))[-1].train_loss

    assert final_loss() == final_loss()


def test_nan_loss_stops_the_loop_as_diverged():
    torch.manual_seed(0)
    data = load_dataset(DataConfig())
    model = build_model(ModelConfig(width=64, depth=3, init="kaiming"), data.input_shape, data.num_classes)
    records = list(fit(model, data, TrainConfig(epochs=10, lr=1e4, momentum=0.9), seed=0))
    assert records[-1].diverged and not math.isfinite(records[-1].train_loss)
    assert len(records) < 10
    assert not any(r.diverged for r in records[:-1])
