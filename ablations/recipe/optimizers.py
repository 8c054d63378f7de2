"""Optimizers by name: `train.optimizer`. Each level builds torch's own class with the arguments
its paper uses; `train.momentum` left unset (None) means the level's own default."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ablations.registry import Registry

if TYPE_CHECKING:
    from ablations.config import TrainConfig

Params = list[torch.nn.Parameter]
OPTIMIZERS: Registry[Callable[[Params, TrainConfig], torch.optim.Optimizer]] = Registry("optimizer")
FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused SGD/Adam/AdamW kernels for every float dtype


def _kernel(params: Params, fused_exists: bool = True) -> dict[str, bool]:
    """torch's fused kernel (one native loop over all tensors) where it exists, else its foreach
    kernel: the same update rule as the default, which on the CPU is a Python loop over the tensors
    and dominates a small model's step (on a 4x64 MLP: SGD 3x, AdamW 4.5x slower per step;
    benchmarks/overhead.py). Other devices and dtypes keep torch's default."""
    if not params or not all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params):
        return {}
    return {"fused": True} if fused_exists else {"foreach": True}


def _momentum(cfg: TrainConfig, default: float) -> float:
    return default if cfg.momentum is None else cfg.momentum


@OPTIMIZERS.register("sgd")
def sgd(params: Params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Stochastic gradient descent (Robbins & Monro 1951): w <- w - lr * (g + wd * w). Plain unless
    `train.momentum` is set; then it is the heavy-ball update of torch.optim.SGD (as before the
    recipe catalog, when `sgd` always read `train.momentum`)."""
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=_momentum(cfg, 0.0), weight_decay=cfg.weight_decay, **_kernel(params)
    )


@OPTIMIZERS.register("momentum")
def momentum(params: Params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Heavy-ball momentum (Polyak 1964; Sutskever et al. 2013, eq. 1), torch's form:
    v <- mu * v + g, w <- w - lr * v, with mu = `train.momentum` (default 0.9)."""
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=_momentum(cfg, 0.9), weight_decay=cfg.weight_decay, **_kernel(params)
    )


@OPTIMIZERS.register("nesterov")
def nesterov(params: Params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Nesterov's accelerated gradient as Sutskever et al. 2013 (eq. 3-4) use it for deep nets,
    torch's form: v <- mu * v + g, w <- w - lr * (g + mu * v), mu = `train.momentum` (default 0.9)."""
    mu = _momentum(cfg, 0.9)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=mu, nesterov=mu > 0, weight_decay=cfg.weight_decay, **_kernel(params)
    )


@OPTIMIZERS.register("rmsprop")
def rmsprop(params: Params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """RMSProp (Hinton, Srivastava & Swersky 2012, Coursera lecture 6e): s <- alpha * s +
    (1 - alpha) * g^2, w <- w - lr * g / (sqrt(s) + eps); alpha = `train.rmsprop_alpha` (the
    lecture uses 0.9, torch 0.99), eps = `train.eps`. No momentum, as in the lecture."""
    return torch.optim.RMSprop(
        params, lr=cfg.lr, alpha=cfg.rmsprop_alpha, eps=cfg.eps, weight_decay=cfg.weight_decay,
        **_kernel(params, fused_exists=False),
    )  # fmt: skip


@OPTIMIZERS.register("adam")
def adam(params: Params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015, Algorithm 1) with betas = `train.adam_betas`, eps = `train.eps`;
    weight decay is added to the gradient (L2), as torch.optim.Adam does."""
    betas = tuple(cfg.adam_betas)
    return torch.optim.Adam(
        params, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **_kernel(params)
    )


@OPTIMIZERS.register("adamw")
def adamw(params: Params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2): Adam with decoupled weight decay,
    w <- w - lr * wd * w applied apart from the adaptive step. With weight_decay 0 it equals adam."""
    betas = tuple(cfg.adam_betas)
    return torch.optim.AdamW(
        params, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **_kernel(params)
    )


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.optimizer](list(model.parameters()), cfg)
