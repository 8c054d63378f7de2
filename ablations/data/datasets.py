"""In-memory datasets: tensors on the training device, batches from an index permutation.

The split into train/val/test depends only on `data.split_seed`, never on the trial seed, so every
trial of a study sees the same examples and differences between cells come from the factors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ablations.registry import Registry

if TYPE_CHECKING:
    from ablations.config import DataConfig


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True))

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches when a generator is given, else in order (for evaluation)."""
        n = len(self)
        order = None if generator is None else torch.randperm(n, generator=generator).to(self.x.device)
        for start in range(0, n, batch_size):
            if order is None:
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield self.x[idx], self.y[idx]


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def to(self, device: torch.device) -> Dataset:
        return Dataset(self.name, self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes)


DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


def split_three(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, test_fraction: float, split_seed: int
) -> tuple[Split, Split, Split]:
    """Random train/val/test split fixed by `split_seed`; normalised with train statistics only."""
    n = len(y)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if n - n_test - n_val < 1:
        raise ValueError("val_fraction + test_fraction leave no training examples")
    test_idx, val_idx, train_idx = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    mean, std = x[train_idx].mean(), x[train_idx].std().clamp_min(1e-8)

    def make(idx: torch.Tensor) -> Split:
        return Split(((x[idx] - mean) / std).contiguous(), y[idx].contiguous())

    return make(train_idx), make(val_idx), make(test_idx)


@DATASETS.register("digits")
def digits(cfg: DataConfig) -> Dataset:
    """scikit-learn's bundled UCI handwritten digits: 1,797 real 8x8 grey images, 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8), values 0..16
    y = torch.tensor(bunch.target, dtype=torch.long)
    train, val, test = split_three(x, y, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    return Dataset("digits", train, val, test, num_classes=10)


@functools.lru_cache(maxsize=4)
def _load_cached(cfg_json: str) -> Dataset:
    from ablations.config import DataConfig

    cfg = DataConfig.model_validate_json(cfg_json)
    return DATASETS[cfg.name](cfg)


def load_dataset(cfg: DataConfig, device: torch.device | str = "cpu") -> Dataset:
    """Load once per process (cached by config) and move to the training device."""
    return _load_cached(cfg.model_dump_json()).to(torch.device(device))
