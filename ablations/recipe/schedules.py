"""Learning-rate schedules by name: `train.schedule`. A schedule is a pure function of the
training clock, evaluated before every optimizer step; a per-epoch schedule reads only
`clock.epoch`, so its lr changes at epoch boundaries, a per-step one reads `clock.step`.
An optional linear warmup (`train.warmup_epochs`) scales any schedule over its first steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablations.registry import Registry

if TYPE_CHECKING:
    from ablations.config import TrainConfig


@dataclass(frozen=True)
class Clock:
    step: int  # optimizer steps taken so far: 0 before the first
    per_epoch: int  # optimizer steps per epoch
    total: int  # optimizer steps in the whole run

    @property
    def epoch(self) -> int:
        """Epochs completed before this step."""
        return self.step // self.per_epoch


SCHEDULES: Registry[Callable[[TrainConfig, Clock], float]] = Registry("schedule")


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the training loop drops only a last batch of one example."""
    return examples // batch_size + (examples % batch_size >= 2)


def total_steps(cfg: TrainConfig, per_epoch: int) -> int:
    full = cfg.epochs * per_epoch
    return full if cfg.max_steps is None else min(full, cfg.max_steps)


@SCHEDULES.register("constant")
def constant(cfg: TrainConfig, clock: Clock) -> float:
    """The same lr throughout (Robbins & Monro 1951 aside, what most ablations use)."""
    return cfg.lr


@SCHEDULES.register("step")
def step(cfg: TrainConfig, clock: Clock) -> float:
    """Step decay, per epoch: lr * gamma ** floor(epoch / step_epochs) (Krizhevsky et al. 2012
    divided by 10 by hand; torch.optim.lr_scheduler.StepLR)."""
    return cfg.lr * cfg.gamma ** (clock.epoch // cfg.step_epochs)


@SCHEDULES.register("multistep")
def multistep(cfg: TrainConfig, clock: Clock) -> float:
    """lr * gamma ** (milestones passed) (He et al. 2015: / 10 at 32k and 48k iterations;
    torch's MultiStepLR). `milestones_unit: epochs` (per epoch) or `steps` (per optimizer step)."""
    now = clock.epoch if cfg.milestones_unit == "epochs" else clock.step
    return cfg.lr * cfg.gamma ** sum(m <= now for m in cfg.milestones)


@SCHEDULES.register("cosine")
def cosine(cfg: TrainConfig, clock: Clock) -> float:
    """Cosine annealing without restarts (Loshchilov & Hutter 2017, SGDR eq. 5), per step:
    min_lr + (lr - min_lr) * (1 + cos(pi * step / total)) / 2."""
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * clock.step / clock.total)) / 2


ONECYCLE_DIV = 25.0  # start at lr / 25 (Smith & Topin 2018 via fastai and torch's default)


@SCHEDULES.register("onecycle")
def onecycle(cfg: TrainConfig, clock: Clock) -> float:
    """1cycle (Smith & Topin 2018), per step, as torch's OneCycleLR (cos, two phases): from lr/25
    up to lr over `onecycle_pct_start` of the steps, then down to min_lr, each half-cosine."""
    peak = float(cfg.onecycle_pct_start * clock.total) - 1
    start, end = cfg.lr / ONECYCLE_DIV, cfg.min_lr
    if clock.step <= peak:
        return _cos_between(start, cfg.lr, clock.step / peak if peak > 0 else 1.0)
    return _cos_between(cfg.lr, end, (clock.step - peak) / (clock.total - 1 - peak))


def _cos_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(fraction, 1.0))) / 2


def warmup_steps(cfg: TrainConfig, per_epoch: int) -> int:
    return round(cfg.warmup_epochs * per_epoch)


def learning_rate(cfg: TrainConfig, clock: Clock) -> float:
    """The lr of the next optimizer step: the schedule's, scaled by a linear warmup from 1/W to 1
    over the first W = warmup_epochs * steps-per-epoch steps (Goyal et al. 2017, sec. 2.2)."""
    lr = SCHEDULES[cfg.schedule](cfg, clock)
    warm = warmup_steps(cfg, clock.per_epoch)
    return lr * min(1.0, (clock.step + 1) / warm) if warm else lr
