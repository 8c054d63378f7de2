"""The training recipe, level by level, against the update rules and formulas written out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablations.config import DataConfig, ModelConfig, TrainConfig, load_space, validate_space
from ablations.data import load_dataset
from ablations.errors import ConfigError
from ablations.grid import grid_fingerprint
from ablations.models import build_model
from ablations.recipe import (
    OPTIMIZERS,
    SCHEDULES,
    Clock,
    EarlyStopping,
    classification_loss,
    l1_penalty,
    learning_rate,
    make_optimizer,
    steps_per_epoch,
    weight_tensors,
)
from ablations.recipe.schedules import total_steps
from ablations.train import fit
from tests.conftest import ROOT

# ---------------------------------------------------------------- optimizers

SCALES = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
TARGET = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
START = torch.tensor([0.3, 0.7, -1.1], dtype=torch.float64)


def grad(w: torch.Tensor) -> torch.Tensor:
    """Gradient of f(w) = 0.5 * sum(scales * (w - target)^2)."""
    return SCALES * (w - TARGET)


def by_hand(name: str, cfg: TrainConfig, steps: int) -> list[torch.Tensor]:
    """The update rules of the papers, written out (weight decay as L2 in the gradient except adamw)."""
    w, v, s, m = START.clone(), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), None
    lr, wd, eps = cfg.lr, cfg.weight_decay, cfg.eps
    mu = {"sgd": 0.0, "momentum": 0.9, "nesterov": 0.9}.get(name) if cfg.momentum is None else cfg.momentum
    b1, b2 = cfg.adam_betas
    m = torch.zeros(3, dtype=torch.float64)
    out = []
    for t in range(1, steps + 1):
        g = grad(w) + (0.0 if name == "adamw" else wd * w)
        if name in ("sgd", "momentum"):
            v = mu * v + g
            w = w - lr * v
        elif name == "nesterov":
            v = mu * v + g
            w = w - lr * (g + mu * v)
        elif name == "rmsprop":
            s = cfg.rmsprop_alpha * s + (1 - cfg.rmsprop_alpha) * g**2
            w = w - lr * g / (s.sqrt() + eps)
        else:  # adam, adamw
            if name == "adamw":
                w = w * (1 - lr * wd)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            w = w - lr * m_hat / (v_hat.sqrt() + eps)
        out.append(w.clone())
    return out


def by_registry(name: str, cfg: TrainConfig, steps: int) -> list[torch.Tensor]:
    w = nn.Parameter(START.clone())
    opt = OPTIMIZERS[name]([w], cfg)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        w.grad = grad(w.detach())
        opt.step()
        out.append(w.detach().clone())
    return out


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_each_optimizer_follows_its_update_rule(name, weight_decay):
    cfg = TrainConfig(optimizer=name, lr=0.05, weight_decay=weight_decay, rmsprop_alpha=0.9, adam_betas=(0.8, 0.95))
    for step, (ours, theirs) in enumerate(zip(by_registry(name, cfg, 5), by_hand(name, cfg, 5), strict=True)):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12, msg=f"{name} step {step + 1}")


def test_optimizers_differ_where_they_should():
    cfg = dict(lr=0.05, weight_decay=0.1)
    last = {n: by_registry(n, TrainConfig(optimizer=n, **cfg), 3)[-1] for n in OPTIMIZERS}
    assert len({tuple(w.tolist()) for w in last.values()}) == len(last)  # no two levels alike
    # with weight decay 0, decoupling changes nothing: adamw equals adam
    same = {n: by_registry(n, TrainConfig(optimizer=n, lr=0.05), 3)[-1] for n in ("adam", "adamw")}
    torch.testing.assert_close(same["adam"], same["adamw"])


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_optimizers_use_torchs_fused_or_foreach_kernel_on_float_cpu_params(name):
    group = make_optimizer(nn.Linear(3, 2), TrainConfig(optimizer=name)).param_groups[0]
    if name == "rmsprop":  # torch has no fused RMSprop
        assert group["foreach"] is True and not group.get("fused")
    else:
        assert group["fused"] is True
    on_meta = nn.Linear(3, 2, device="meta")  # no fused kernel there: torch's default
    assert not make_optimizer(on_meta, TrainConfig(optimizer=name)).param_groups[0].get("fused")


def test_momentum_defaults_and_the_migration_of_sgd():
    model = nn.Linear(2, 2)
    group = lambda **kw: make_optimizer(model, TrainConfig(**kw)).param_groups[0]  # noqa: E731
    assert (group()["momentum"], group()["nesterov"]) == (0.9, False)  # default: heavy ball, as before
    assert group(optimizer="sgd")["momentum"] == 0.0  # plain unless set
    assert group(optimizer="sgd", momentum=0.9)["momentum"] == 0.9  # what shipped spaces say: unchanged
    assert group(optimizer="nesterov")["nesterov"] and group(optimizer="nesterov")["momentum"] == 0.9
    assert group(optimizer="momentum", momentum=0.5)["momentum"] == 0.5


def test_a_space_stored_before_the_recipe_catalog_validates_and_means_the_same():
    stored = {  # `ablate worker` re-validates study.user_attrs['space'] as stored by the previous version
        "name": "old",
        "factors": {"model.norm": ["none", "batch"]},
        "train": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 64,
                  "epochs": 12, "precision": "fp32", "channels_last": False},
    }  # fmt: skip
    space = validate_space(stored)
    group = make_optimizer(nn.Linear(2, 2), space.trial_config({"model.norm": "none"}).train).param_groups[0]
    assert (group["momentum"], group["nesterov"], group["lr"]) == (0.9, False, 0.05)
    # the recipe keys at their defaults are left out of the dump, so the grid fingerprint is unchanged
    assert space.model_dump(mode="json")["train"] == stored["train"]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (
            {"optimizer": "adamm"},
            "train.optimizer: unknown optimizer 'adamm'; allowed: sgd, momentum, nesterov, rmsprop",
        ),
        ({"schedule": "cos"}, "train.schedule: unknown schedule 'cos'; allowed: constant, step, multistep, cosine"),
        ({"schedule": "multistep"}, "schedule multistep needs train.milestones"),
        ({"schedule": "multistep", "milestones": [5, 2]}, "train.milestones: give increasing positive milestones"),
        ({"early_stopping": 3}, "train.early_stopping: give the rule as {patience: EPOCHS, min_delta: 0.0}"),
        ({"early_stopping": {"patience": 0}}, "train.early_stopping.patience"),
        ({"milestones_unit": "iters"}, "train.milestones_unit: must be one of 'epochs' or 'steps'"),
    ],
)
def test_bad_recipe_keys_name_the_key_and_the_fix(train, message):
    with pytest.raises(ConfigError) as err:
        validate_space({"name": "x", "train": train}, source="space.yaml")
    assert str(err.value).startswith("space.yaml: ") and message in str(err.value)


# ---------------------------------------------------------------- schedules


def lrs(cfg: TrainConfig, per_epoch: int) -> list[float]:
    total = total_steps(cfg, per_epoch)
    return [learning_rate(cfg, Clock(s, per_epoch, total)) for s in range(total)]


def torch_lrs(cfg: TrainConfig, per_epoch: int, make, per_step: bool) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make(opt)
    out = []
    for s in range(cfg.epochs * per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if per_step or (s + 1) % per_epoch == 0:
            sched.step()
    return out


def test_each_schedule_matches_its_formula_and_torch():
    per_epoch, epochs, lr = 7, 10, 0.1
    base = dict(lr=lr, epochs=epochs, gamma=0.5)
    total = per_epoch * epochs
    step = lrs(TrainConfig(schedule="step", step_epochs=3, **base), per_epoch)
    assert step == [lr * 0.5 ** ((s // per_epoch) // 3) for s in range(total)]
    assert step == pytest.approx(
        torch_lrs(TrainConfig(**base), per_epoch, lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), False)
    )
    multi = lrs(TrainConfig(schedule="multistep", milestones=[2, 5], **base), per_epoch)
    make = lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], 0.5)  # noqa: E731
    assert multi == pytest.approx(torch_lrs(TrainConfig(**base), per_epoch, make, False))
    assert multi[2 * per_epoch - 1] == lr and multi[2 * per_epoch] == lr / 2 and multi[5 * per_epoch] == lr / 4
    in_steps = lrs(TrainConfig(schedule="multistep", milestones=[10, 40], milestones_unit="steps", **base), per_epoch)
    assert in_steps == [lr * 0.5 ** ((s >= 10) + (s >= 40)) for s in range(total)]
    cosine = lrs(TrainConfig(schedule="cosine", min_lr=0.001, **base), per_epoch)
    assert cosine == pytest.approx(
        [0.001 + (lr - 0.001) * (1 + math.cos(math.pi * s / total)) / 2 for s in range(total)]
    )
    make = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.001)  # noqa: E731
    assert cosine == pytest.approx(torch_lrs(TrainConfig(**base), per_epoch, make, True), rel=1e-9)
    assert lrs(TrainConfig(**base), per_epoch) == [lr] * total  # constant
    one = lrs(TrainConfig(schedule="onecycle", min_lr=lr / 25 / 1e4, **base), per_epoch)
    make = lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=lr, total_steps=total)  # noqa: E731
    assert one == pytest.approx(torch_lrs(TrainConfig(**base), per_epoch, make, True), rel=1e-9)
    assert max(one) == pytest.approx(lr) and one[0] == pytest.approx(lr / 25)
    assert set(SCHEDULES.names()) == {"constant", "step", "multistep", "cosine", "onecycle"}


@pytest.mark.parametrize("schedule", ["constant", "step", "multistep", "cosine", "onecycle"])
def test_linear_warmup_scales_any_schedule_over_its_first_steps(schedule):
    per_epoch = 4
    cfg = TrainConfig(schedule=schedule, lr=0.1, epochs=8, step_epochs=2, milestones=[1, 3], min_lr=0.01)
    plain = lrs(cfg, per_epoch)
    warm = lrs(cfg.model_copy(update={"warmup_epochs": 1.5}), per_epoch)  # 6 steps
    assert warm == pytest.approx([p * min(1.0, (s + 1) / 6) for s, p in enumerate(plain)])
    assert warm[0] == pytest.approx(plain[0] / 6) and warm[6:] == plain[6:]


def test_he_et_al_cifar_recipe_in_iterations():
    """45k training images in batches of 128: 352 steps per epoch (the last batch holds 72); 64k
    iterations are 181 epochs and 288 steps; lr / 10 after 32k and 48k iterations."""
    train = load_space(ROOT / "search_spaces" / "cifar10_resnet.yaml").train
    per_epoch = steps_per_epoch(45_000, train.batch_size)
    assert per_epoch == 352 and total_steps(train, per_epoch) == 64_000
    lr_at = lambda s: learning_rate(train, Clock(s, per_epoch, 64_000))  # noqa: E731
    assert [lr_at(s) for s in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert (train.momentum, train.weight_decay, train.optimizer) == (0.9, 1e-4, "sgd")


def test_steps_per_epoch_counts_what_the_loop_runs():
    assert [steps_per_epoch(n, 10) for n in (20, 21, 22, 9, 1)] == [2, 2, 3, 1, 0]


# ---------------------------------------------------------------- regularisation


def test_l1_penalises_weights_not_biases_or_norm_parameters():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8, depth=2, norm="batch"), (1, 4, 4), 3)
    weights = weight_tensors(model)
    linear = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    assert {id(w) for w in weights} == {id(w) for w in linear} and len(linear) == 3
    norms = [p for m in model.modules() if isinstance(m, nn.BatchNorm1d) for p in m.parameters()]
    assert norms and not {id(p) for p in norms} & {id(w) for w in weights}
    by_hand = 0.003 * sum(w.abs().sum().item() for w in linear)
    assert l1_penalty(weights, 0.003).item() == pytest.approx(by_hand, rel=1e-6)
    l1_penalty(weights, 0.003).backward()  # d/dw lambda |w| = lambda sign(w)
    torch.testing.assert_close(linear[0].grad, 0.003 * linear[0].detach().sign())


def test_label_smoothing_loss_equals_the_formula():
    torch.manual_seed(0)
    logits, y, eps, k = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2]), 0.2, 4
    target = (1 - eps) * F.one_hot(y, k).double() + eps / k
    by_hand = -(target * logits.log_softmax(1)).sum(1).mean()
    assert classification_loss(logits, y, eps).item() == pytest.approx(by_hand.item(), rel=1e-12)
    assert classification_loss(logits, y, 0.0).item() == pytest.approx(F.cross_entropy(logits, y).item())


def one_step(**train) -> tuple[float, float, list]:
    """(norm of the first update / lr, recorded pre-clip grad norm, records) of a plain-SGD step."""
    data = load_dataset(DataConfig())
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=16, depth=1), data.input_shape, data.num_classes)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    cfg = TrainConfig(optimizer="sgd", lr=0.1, epochs=3, max_steps=1, **train)
    records = list(fit(model, data, cfg, seed=0))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return ((after - before).norm() / 0.1).item(), records[0].grad_norm, records


def test_gradient_clipping_bounds_the_norm_and_records_the_norm_before_clipping():
    step, raw_norm, records = one_step()
    assert len(records) == 1  # max_steps=1 ends the run inside the first epoch
    assert step == pytest.approx(raw_norm, rel=1e-4) and raw_norm > 0.5  # unclipped: the step is the gradient
    clipped, raw_clipped, _ = one_step(grad_clip=0.05)
    assert raw_clipped == pytest.approx(raw_norm, rel=1e-5)  # the record holds the norm before clipping
    assert clipped == pytest.approx(0.05, rel=1e-3)  # the step's gradient has norm grad_clip


def test_l1_and_smoothing_change_the_step_but_train_loss_stays_plain_cross_entropy():
    data = load_dataset(DataConfig())
    finals = {}
    for key, train in {"plain": {}, "l1": {"l1": 0.01}, "smooth": {"label_smoothing": 0.2}}.items():
        torch.manual_seed(0)
        model = build_model(ModelConfig(width=16, depth=1), data.input_shape, data.num_classes)
        first = next(fit(model, data, TrainConfig(epochs=1, max_steps=1, batch_size=2000, **train), seed=0))
        finals[key] = first
    # one full-batch step: train loss is measured before the update, with the same weights
    assert finals["l1"].train_loss == pytest.approx(finals["plain"].train_loss, rel=1e-6)
    assert finals["smooth"].train_loss == pytest.approx(finals["plain"].train_loss, rel=1e-6)
    assert finals["l1"].val_loss != finals["plain"].val_loss != finals["smooth"].val_loss


# ---------------------------------------------------------------- early stopping


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    rule = EarlyStopping(patience=3, min_delta=0.01, direction="maximize")
    values = [0.50, 0.60, 0.605, 0.59, 0.62, 0.625, 0.628, 0.629]
    stops = [rule.update(v) for v in values]
    # 0.605 is within min_delta of 0.60 (no improvement), 0.59 neither, 0.62 is; then 0.625, 0.628 and
    # 0.629 are not more than 0.01 above 0.62: the third of them (epoch 8) stops the run
    assert stops == [False] * 7 + [True]
    assert (rule.best, rule.best_epoch) == (0.62, 5)
    down = EarlyStopping(patience=2, direction="minimize")
    assert [down.update(v) for v in (1.0, 0.8, math.nan, 0.9)] == [False, False, False, True]
    assert (down.best, down.best_epoch) == (0.8, 2)


@pytest.mark.parametrize(
    ("name", "before"),
    [("quickstart", "9ce6cf7a785d"), ("degradation", "0f20f4f9a686"), ("random_fraction", "82f8ac3db8ad")],
)
def test_shipped_spaces_keep_the_grid_fingerprint_their_studies_were_made_with(name, before):
    """Fingerprints computed by the version before the recipe catalog: its studies still resume."""
    assert grid_fingerprint(load_space(ROOT / "search_spaces" / f"{name}.yaml")) == before
