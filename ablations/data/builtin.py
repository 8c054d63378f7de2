"""Datasets that need no files: scikit-learn's digits and procedurally generated images."""

from __future__ import annotations

import gzip
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ablations.data.datasets import DATASETS, Raw, Shape, Source
from ablations.plugins.imports import installed_file

if TYPE_CHECKING:
    from ablations.config import DataConfig


def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled UCI handwritten digits: 1,797 real 8x8 grey images (float32, values
    0..16) and their labels 0..9, exactly as `sklearn.datasets.load_digits()` gives them.

    Read straight from the CSV file scikit-learn ships (pixels then label per row), found without
    importing scikit-learn: `import sklearn.datasets` costs about a second, more than the rest of
    a small sweep's start. Should the file ever move, scikit-learn's own loader reads it."""
    path = installed_file("sklearn", "datasets", "data", "digits.csv.gz")
    if path is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return torch.tensor(bunch.images, dtype=torch.float32), torch.tensor(bunch.target, dtype=torch.long)
    with gzip.open(path, "rt") as rows:
        table = torch.tensor(np.loadtxt(rows, delimiter=","), dtype=torch.float64)
    return table[:, :-1].reshape(-1, 8, 8).float(), table[:, -1].long()


def _digits(cfg: DataConfig) -> Raw:
    """scikit-learn's bundled UCI handwritten digits: 1,797 real 8x8 grey images, 10 classes."""
    x, y = digits_images()
    return Raw(x.unsqueeze(1), y, num_classes=10)  # (N, 1, 8, 8), values 0..16


DATASETS.register("digits")(Source(_digits, lambda cfg: ((1, 8, 8), 10)))


SYNTHETIC_SEED = 1234  # the images are fixed; `split_seed` only chooses which go to which split


def _synthetic(cfg: DataConfig) -> Raw:
    """`synthetic_size` uint8 images of `synthetic_shape`, classes balanced. Each class has a smooth
    random prototype (noise at a quarter of the resolution, upsampled), and an image is its class's
    prototype plus pixel noise: learnable, not trivially, and with spatial structure, so crops and
    flips act on it as on photos."""
    c, h, w = cfg.synthetic_shape
    gen = torch.Generator().manual_seed(SYNTHETIC_SEED)
    coarse = torch.randn(cfg.synthetic_classes, c, max(1, h // 4), max(1, w // 4), generator=gen)
    prototypes = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    y = torch.arange(cfg.synthetic_size) % cfg.synthetic_classes
    x = torch.empty(cfg.synthetic_size, c, h, w, dtype=torch.uint8)
    for start in range(0, len(y), 4096):  # in chunks: no float copy of a large set at once
        labels = y[start : start + 4096]
        noise = torch.randn(len(labels), c, h, w, generator=gen)
        x[start : start + 4096] = (128 + 40 * prototypes[labels] + 40 * noise).round().clamp(0, 255).to(torch.uint8)
    return Raw(x, y, cfg.synthetic_classes)


def _synthetic_info(cfg: DataConfig) -> tuple[Shape, int]:
    return tuple(cfg.synthetic_shape), cfg.synthetic_classes


DATASETS.register("synthetic")(Source(_synthetic, _synthetic_info))
