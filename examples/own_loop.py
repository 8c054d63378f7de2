"""Your own training function (`train.loop: "examples.own_loop:train"`; see the README).

The suite builds the model and the data from the space and calls this with the arguments its
signature names (model, data, config, seed, device). It yields one dict of metrics per epoch,
including the objective's metric; the suite prunes, streams to W&B and stores each record. This
one trains with gradient accumulation and mixup, which the built-in loop does not have; its own
settings come from `train.args` (each usable as a factor, e.g. `train.args.mixup_alpha: [0, 0.4]`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ablations.data import Dataset


def train(model: nn.Module, data: Dataset, config: dict[str, Any], seed: int) -> Iterator[dict[str, float]]:
    cfg, own = config["train"], config["train"]["args"]  # train.args: this loop's own settings
    accumulate, alpha = int(own.get("accumulate", 1)), float(own.get("mixup_alpha", 0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    shuffle = torch.Generator().manual_seed(seed)
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        total, seen = 0.0, 0
        for step, (x, y) in enumerate(data.train.batches(cfg["batch_size"], shuffle), start=1):
            # mixup (Zhang et al. 2018): train on convex combinations of pairs of examples and labels
            lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
            perm = torch.randperm(len(y), device=x.device)
            logits = model(lam * x + (1 - lam) * x[perm])
            loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
            (loss / accumulate).backward()
            if step % accumulate == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            total += loss.item() * len(y)
            seen += len(y)
        val_loss, val_acc = evaluate(model, data.val)
        yield {"epoch": epoch, "train_loss": total / seen, "val_loss": val_loss, "val_acc": val_acc}


@torch.no_grad()
def evaluate(model: nn.Module, split: Any) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for x, y in split.batches(1024):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return loss / len(split), correct / len(split)
