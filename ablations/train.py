"""The training loop: plain PyTorch. It yields one record per epoch and knows nothing of Optuna
or W&B; the trial layer decides what to do with each record (report, log, prune, stop)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

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

    @property
    def diverged(self) -> bool:
        """A NaN or infinite loss: the run cannot recover, and that is a result of the ablation."""
        return not (math.isfinite(self.train_loss) and math.isfinite(self.val_loss))

    def metrics(self) -> dict[str, float]:
        return asdict(self)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), device=split.x.device, dtype=torch.long)
    for x, y in split.batches(batch_size):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    return (loss_sum / len(split)).item(), (correct / len(split)).item()


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig, seed: int) -> Iterator[EpochRecord]:
    """Train for `cfg.epochs`, yielding a record after each epoch; stop early on divergence.

    Losses are accumulated on the device and read once per epoch: a per-step `.item()` would
    synchronise the device on every batch.
    """
    optimizer = make_optimizer(model, cfg)
    shuffle = torch.Generator().manual_seed(seed)
    device = data.train.x.device
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for x, y in data.train.batches(cfg.batch_size, shuffle):
            if len(y) < 2:  # batch norm cannot normalise a batch of one; drop a lone straggler
                continue
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        train_loss, train_acc = (loss_sum / seen).item(), (correct / seen).item()
        val_loss, val_acc = evaluate(model, data.val)
        record = EpochRecord(epoch, train_loss, train_acc, val_loss, val_acc, time.perf_counter() - start)
        yield record
        if record.diverged:
            return
