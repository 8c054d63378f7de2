"""Sequence-classification data, (N, T, F): T steps of F features; none needs a download.

`digits_rows` and `digits_pixels` read scikit-learn's 8x8 digits row by row (8 steps of 8) or pixel
by pixel (64 steps of 1: long-range memory, the small cousin of pixel MNIST, Le et al. 2015).
`mnist_rows` is MNIST as 28 steps of 28 (the MNIST files under `data.root`). `marked_pair` is a
generated task whose answer depends on order: which of two marked values comes first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ablations.data.builtin import SYNTHETIC_SEED, digits_images
from ablations.data.datasets import DATASETS, DataMissingError, Raw, Shape, Source

if TYPE_CHECKING:
    from ablations.config import DataConfig


def _digits_images() -> Raw:
    return Raw(*digits_images(), num_classes=10)  # (N, 8, 8), values 0..16


def _digits_rows(cfg: DataConfig) -> Raw:
    """The 1,797 digits, each 8 steps (rows) of 8 features (pixels)."""
    return _digits_images()


def _digits_pixels(cfg: DataConfig) -> Raw:
    """The 1,797 digits, each 64 steps of one pixel, in reading order."""
    raw = _digits_images()
    return Raw(raw.x.reshape(len(raw.x), 64, 1), raw.y, raw.num_classes)


DATASETS.register("digits_rows")(Source(_digits_rows, lambda cfg: ((8, 8), 10), kind="sequence"))
DATASETS.register("digits_pixels")(Source(_digits_pixels, lambda cfg: ((64, 1), 10), kind="sequence"))


def _mnist(cfg: DataConfig, part: str) -> Any:
    """The `mnist` source's load or info (same files), its messages naming mnist_rows."""
    try:
        return getattr(DATASETS["mnist"], part)(cfg)  # looked up here: vision.py registers after this module
    except DataMissingError as err:
        message = str(err).replace("data.name=mnist:", "data.name=mnist_rows (the MNIST files):")
        raise DataMissingError(message) from None


def _mnist_rows_source() -> Source:
    """The `mnist` source, each image as 28 steps of 28 pixels."""

    def load(cfg: DataConfig) -> Raw:
        raw = _mnist(cfg, "load")
        assert raw.test_x is not None, "MNIST has an official test set"
        return Raw(raw.x.squeeze(1), raw.y, raw.num_classes, raw.test_x.squeeze(1), raw.test_y)

    def info(cfg: DataConfig) -> tuple[Shape, int]:
        (_, h, w), classes = _mnist(cfg, "info")
        return (h, w), classes

    def ensure(cfg: DataConfig) -> None:
        _mnist(cfg, "ensure")

    return Source(load, info, kind="sequence", ensure=ensure)


DATASETS.register("mnist_rows")(_mnist_rows_source())


def _marked_pair(cfg: DataConfig) -> Raw:
    """`synthetic_size` sequences of `seq_length` steps, 2 features: a value uniform in [0, 1) and a
    marker (0/1). Two steps are marked, one in each half of the sequence (as in Hochreiter &
    Schmidhuber 1997's adding problem); the label is 1 when the first marked value is larger than the
    second. Swapping the two marked steps flips the label, so a model blind to order is at chance,
    and the first mark lies up to `seq_length` - 1 steps before the end. Classes are balanced."""
    n, t = cfg.synthetic_size, cfg.seq_length
    gen = torch.Generator().manual_seed(SYNTHETIC_SEED)
    values = torch.rand(n, t, generator=gen)
    half = t // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, t, (n,), generator=gen)
    rows = torch.arange(n)
    markers = torch.zeros(n, t)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (values[rows, first] > values[rows, second]).long()
    return Raw(torch.stack([values, markers], dim=2), y, num_classes=2)


DATASETS.register("marked_pair")(Source(_marked_pair, lambda cfg: ((cfg.seq_length, 2), 2), kind="sequence"))
