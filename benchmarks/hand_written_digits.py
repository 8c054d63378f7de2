"""What a practitioner would write by hand instead of `ablate run`: one cell (a 4x64 MLP with
batch norm, Kaiming init, ReLU) on scikit-learn's digits, N seeds, a plain PyTorch loop, every
epoch's validation accuracy reported to an Optuna study in a journal file, test accuracy at the end.

    python benchmarks/hand_written_digits.py --seeds 9 --epochs 60 --journal hand.journal

The same work as `ablate run` of benchmarks/whole_process.py's space: the same split sizes (60/20/20),
normalization by the training split's mean and std, SGD with momentum, batch 64, one torch thread
fewer than the cores (as `ablate run` picks). Used by benchmarks/whole_process.py. torch's default
SGD, which on the CPU steps one tensor at a time; `--fused` takes the fused kernel `ablate run` uses.
"""

from __future__ import annotations

import argparse
import os

import optuna
import torch
import torch.nn.functional as F
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from sklearn.datasets import load_digits
from torch import nn


def digits_splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = n_val = round(0.2 * len(y))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    mean, std = x[train].mean(), x[train].std()
    return {name: ((x[idx] - mean) / std, y[idx]) for name, idx in (("train", train), ("val", val), ("test", test))}


def mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64
    for _ in range(4):
        layers += [nn.Linear(width, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU()]
    layers.append(nn.Linear(64, 10))
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def train_epoch(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> None:
    """One epoch of shuffled batches of 64 (a last batch of one dropped, as batch norm needs two)."""
    model.train()
    order = torch.randperm(len(y), generator=gen)
    for i in range(0, len(y), 64):
        idx = order[i : i + 64]
        if len(idx) < 2:
            continue
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def train_one(trial: optuna.Trial, data: dict, seed: int, epochs: int, fused: bool = False) -> float:
    torch.manual_seed(seed)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, fused=fused or None)
    gen = torch.Generator().manual_seed(seed)
    val_acc = 0.0
    for epoch in range(1, epochs + 1):
        train_epoch(model, opt, *data["train"], gen)
        val_acc = accuracy(model, *data["val"])
        trial.report(val_acc, epoch)
    trial.set_user_attr("test_acc", accuracy(model, *data["test"]))
    return val_acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--journal", default="hand.journal")
    parser.add_argument("--fused", action="store_true", help="torch's fused SGD kernel, as `ablate run` uses")
    args = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(os.path.abspath(args.journal)))
    study = optuna.create_study(study_name="hand", storage=storage, direction="maximize", load_if_exists=True)
    data = digits_splits()
    for seed in range(args.seeds):
        trial = study.ask()
        trial.set_user_attr("seed", seed)
        study.tell(trial, train_one(trial, data, seed, args.epochs, args.fused))
    best = study.best_trial
    print(f"{len(study.trials)} trials; best val_acc {best.value:.4f} (seed {best.user_attrs['seed']})")


if __name__ == "__main__":
    main()
