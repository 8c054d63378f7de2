"""The training loop: plain PyTorch. It yields one record per epoch and knows nothing of Optuna
or W&B; the trial layer decides what to do with each record (report, log, prune, stop)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ablations.recipe import Clock, classification_loss, l1_penalty, learning_rate, make_optimizer, weight_tensors
from ablations.recipe.schedules import steps_per_epoch, total_steps

if TYPE_CHECKING:
    from ablations.config import TrainConfig
    from ablations.data import Dataset, Split


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float
    lr: float  # of the epoch's last optimizer step
    grad_norm: float  # mean global gradient norm of the epoch's steps, before clipping

    @property
    def diverged(self) -> bool:
        """A NaN or infinite loss: the run cannot recover, and that is a result of the ablation."""
        return not (math.isfinite(self.train_loss) and math.isfinite(self.val_loss))

    def metrics(self) -> dict[str, float]:
        return asdict(self)


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Mixed precision for the forward pass; fp32 leaves autocast off (no context at all: even a
    disabled autocast costs ~9 us a step). Losses and the optimizer stay in fp32 (autocast runs
    cross-entropy in fp32)."""
    dtype = AMP_DTYPES.get(precision)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, batch_size: int = 1024, precision: str = "fp32", channels_last: bool = False
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=split.device)
    correct = torch.zeros((), device=split.device, dtype=torch.long)
    for x, y in split.batches(batch_size):
        with autocast(split.device, precision):
            logits = model(_memory_format(x, channels_last))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    return (loss_sum / len(split)).item(), (correct / len(split)).item()


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig, seed: int) -> Iterator[EpochRecord]:
    """Train for `cfg.epochs` (or `cfg.max_steps` optimizer steps), yielding a record after each
    epoch; stop early on divergence.

    The recipe (ablations/recipe) sets the lr before every step and adds the L1 penalty and label
    smoothing to the loss minimised; `train_loss` stays the plain cross-entropy, so it compares
    across regularisers. Losses are accumulated on the device and read once per epoch: a per-step
    `.item()` would synchronise the device on every batch. The shuffle and the augmentations are
    seeded by `seed`, the augmentations by a generator on the device, where they run.
    """
    device = data.device
    channels_last = cfg.channels_last and device.type == "cuda"  # NHWC pays off with cuDNN convolutions
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    one_kernel = fusable(model, params)
    l1_weights = weight_tensors(model) if cfg.l1 else []
    per_epoch = steps_per_epoch(len(data.train), cfg.batch_size)
    clock = Clock(0, per_epoch, total_steps(cfg, per_epoch))
    # fp16 has too little range for small gradients: scale the loss (bf16 has fp32's range).
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    shuffle = torch.Generator().manual_seed(seed)
    augment_gen = torch.Generator(device=device).manual_seed(seed)
    for epoch in range(1, cfg.epochs + 1):
        if clock.step >= clock.total:  # max_steps reached
            return
        start = time.perf_counter()
        model.train()
        # Per-step values stay on the device and are combined once per epoch: every torch op in
        # the step costs a few microseconds, which on a small model is a large part of the step.
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        predictions: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []  # each step's global gradient norm, before clipping
        lr = cfg.lr
        for x, y in data.train.batches(cfg.batch_size, shuffle, data.augment, augment_gen):
            if len(y) < 2:  # batch norm cannot normalise a batch of one; drop a lone straggler
                continue
            if clock.step >= clock.total:
                break
            lr = learning_rate(cfg, clock)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device, cfg.precision):
                logits = model(_memory_format(x, channels_last))
                loss = classification_loss(logits, y, cfg.label_smoothing)
            data_loss = F.cross_entropy(logits.detach().float(), y) if cfg.label_smoothing else loss.detach()
            if l1_weights:
                loss = loss + l1_penalty(l1_weights, cfg.l1)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # true gradients for the norm and the clip (a no-op without fp16)
            if cfg.grad_clip is None:
                norms.append(gradient_norm(params, one_kernel))
            else:
                norms.append(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            scaler.step(optimizer)
            scaler.update()
            clock = Clock(clock.step + 1, clock.per_epoch, clock.total)
            losses.append(data_loss)
            sizes.append(len(y))
            predictions.append(logits.detach().argmax(1))
            labels.append(y)
        seen = sum(sizes)
        if not seen:
            raise ValueError(f"the training split ({len(data.train)} example(s)) gave no batch of 2 or more examples")
        train_loss = (torch.stack(losses).float() @ torch.tensor(sizes, dtype=torch.float32, device=device)).item()
        train_acc = (torch.cat(predictions) == torch.cat(labels)).sum().item() / seen
        # fp16 steps that overflow are skipped by the scaler: leave them out (NaN if every step did)
        stacked = torch.stack(norms).float()
        grad_norm = stacked[stacked.isfinite()].mean().item()
        val_loss, val_acc = evaluate(model, data.val, precision=cfg.precision, channels_last=channels_last)
        seconds = time.perf_counter() - start
        record = EpochRecord(epoch, train_loss / seen, train_acc, val_loss, val_acc, seconds, lr, grad_norm)
        yield record
        if record.diverged:
            return


def gradient_norm(params: list[nn.Parameter], fusable: bool = True) -> torch.Tensor:
    """The global L2 norm of the gradients, as clip_grad_norm_ computes it, from one fused kernel
    when `fusable` (every parameter of one device and dtype, no sparse gradients: see `fusable`).
    torch's get_total_norm groups the tensors by device and dtype first, which on a small model
    costs more than the norms."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else None)
    if not fusable:
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def fusable(model: nn.Module, params: list[nn.Parameter]) -> bool:
    """Whether `gradient_norm` may take every gradient in one kernel (decided once, not per step)."""
    one_kind = len({(p.device, p.dtype) for p in params}) <= 1
    return one_kind and not any(getattr(m, "sparse", False) is True for m in model.modules())
