from __future__ import annotations

import math

import pytest
import torch

from ablations.config import DataConfig, ModelConfig, TrainConfig
from ablations.data import load_dataset
from ablations.models import build_model
from ablations.train import evaluate, fit, fusable, gradient_norm


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


def test_an_epoch_record_equals_the_per_step_reference_and_the_fused_step_equals_torchs_default():
    """fit() combines per-step values once per epoch and steps with torch's fused kernel; the
    record and the weights must equal a plain loop that sums per step with torch's default SGD."""
    data = load_dataset(DataConfig())
    cfg = TrainConfig(optimizer="momentum", lr=0.05, epochs=2, batch_size=100)

    def model() -> torch.nn.Module:
        torch.manual_seed(5)
        return build_model(ModelConfig(width=32, depth=2, init="kaiming"), data.input_shape, data.num_classes)

    ours = model()
    records = list(fit(ours, data, cfg, seed=7))

    reference = model()
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, foreach=False)
    shuffle = torch.Generator().manual_seed(7)
    for epoch, record in enumerate(records, start=1):
        reference.train()
        loss_sum, correct, seen, norms = 0.0, 0, 0, []
        for x, y in data.train.batches(100, shuffle):
            if len(y) < 2:
                continue
            logits = reference(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            norms.append(torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()]).item())
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        assert record.epoch == epoch
        assert record.train_loss == pytest.approx(loss_sum / seen, rel=1e-5)
        assert record.train_acc == correct / seen
        assert record.grad_norm == pytest.approx(sum(norms) / len(norms), rel=1e-5)
        assert (record.val_loss, record.val_acc) == pytest.approx(evaluate(reference, data.val), rel=1e-5)
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_gradient_norm_is_clip_grad_norms_global_norm():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    model(torch.randn(4, 6)).square().sum().backward()
    params = list(model.parameters())
    expected = torch.nn.utils.clip_grad_norm_(params, max_norm=float("inf"))
    assert gradient_norm(params).item() == pytest.approx(expected.item(), rel=1e-6)
    model[2].weight.grad = None  # a parameter without a gradient is left out, as torch does
    rest = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]).item()
    assert gradient_norm(params).item() == pytest.approx(rest, rel=1e-6)
    assert gradient_norm(params, fusable=False).item() == pytest.approx(rest, rel=1e-6)
    assert fusable(model, params)
    sparse = torch.nn.Embedding(5, 3, sparse=True)
    assert not fusable(sparse, list(sparse.parameters()))
