"""Your own data, by import path (see the README, "Ablate your own model").

`noisy_digits` returns tensors (the fast path: held on the device, batched augmentation);
`rotated_digits` returns map-style torch Datasets, which are read into memory when they fit or
through a DataLoader when they are larger than `data.memory_limit_mb`.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset


def noisy_digits(noise: float = 0.0, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's 8x8 digits with Gaussian pixel noise of std `noise` (pixel values 0..16);
    the last 297 images are the test set, val is carved from the rest by `data.split_seed`."""
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    x = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    y = torch.tensor(bunch.target)
    return {"train": (x[:1500], y[:1500]), "test": (x[1500:], y[1500:])}


class RotatedDigits(Dataset):
    """Each digit turned by `quarter_turns` x 90 degrees: a Dataset of (image, label) pairs."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, quarter_turns: int) -> None:
        self.images, self.labels, self.turns = images, labels, quarter_turns

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.rot90(self.images[i], self.turns, dims=(1, 2)), int(self.labels[i])


def rotated_digits(quarter_turns: int = 1) -> dict[str, Dataset]:
    x, y = noisy_digits()["train"]
    return {"train": RotatedDigits(x[:1200], y[:1200], quarter_turns), "val": RotatedDigits(x[1200:], y[1200:], 0)}
