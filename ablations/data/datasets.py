"""Datasets as tensors on the training device; batches from an index permutation.

A source (one registered name) turns a `DataConfig` into `Raw` arrays: uint8 images (N, C, H, W)
and labels, plus the official test set when the dataset has one. The code here carves the splits,
computes the normalization and caches the result once per process and device. Images stay uint8
on the device (a quarter of the memory of floats) and are normalized per batch, after the
geometric augmentations and before cutout.

The split into train/val(/test) depends only on `data.split_seed`, never on the trial seed, so every
trial of a study sees the same examples and differences between cells come from the factors.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from ablations.data.augment import Augment
from ablations.errors import AblationError
from ablations.registry import Registry

if TYPE_CHECKING:
    from ablations.config import DataConfig

Shape = tuple[int, ...]
Stats = tuple[tuple[float, ...], tuple[float, ...]]  # per-channel mean and std, pixel values in [0, 1]
# Fields that change how batches are made, not which examples are loaded: not part of the cache key.
BATCH_FIELDS = {"crop_padding", "flip", "cutout"}


class DataMissingError(AblationError):
    """The files of a dataset are not where the config says; the message says what to put where."""


@dataclass(frozen=True)
class SplitIndices:
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor  # into the official test set when there is one, else into the training pool


@dataclass(frozen=True)
class Raw:
    x: torch.Tensor  # (N, C, H, W) or sequences (N, T, F): uint8 pixels, or floats (normalized here, eagerly)
    y: torch.Tensor  # (N,) int64 labels
    num_classes: int
    test_x: torch.Tensor | None = None  # the official test set, if the dataset has one
    test_y: torch.Tensor | None = None
    splits: SplitIndices | None = None  # when the source chose the splits itself (to decode only those)


def prepare(
    x: torch.Tensor,
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
    augment: Augment | None,
    gen: torch.Generator | None,
) -> torch.Tensor:
    """Raw batch -> network input: crop/flip on raw pixels, normalize to float, then cutout."""
    if augment is not None and gen is not None and augment.active:
        x = augment.geometric(x, gen)
    x = x.float() if mean is None else x.to(torch.float32, copy=True).sub_(mean).div_(std)  # in place on a copy
    if augment is not None and gen is not None and augment.active:
        x = augment.erase(x, gen)
    return x


class Batches(Protocol):
    """What the training loop needs from a split: the in-memory `Split` or a streamed folder."""

    device: torch.device

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> Batches: ...

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        aug_generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # raw: uint8 images, or float features already normalized (then mean is None)
    y: torch.Tensor
    mean: torch.Tensor | None = None  # (C, 1, 1), or (1, F) for sequences, in the units of x
    std: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device) -> Split:
        return Split(*(None if t is None else _copy(t, device) for t in (self.x, self.y, self.mean, self.std)))

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        aug_generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches when a generator is given, else in order (for evaluation)."""
        n = len(self)
        order = None if generator is None else torch.randperm(n, generator=generator).to(self.device)
        for start in range(0, n, batch_size):
            if order is None:
                x, y = self.x[start : start + batch_size], self.y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                x, y = self.x[idx], self.y[idx]
            yield prepare(x, self.mean, self.std, augment, aug_generator), y


def _copy(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Pinned host memory lets the copy to a GPU run asynchronously (`non_blocking`)."""
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Batches
    val: Batches
    test: Batches
    num_classes: int
    input_shape: Shape
    augment: Augment = Augment()  # applied to training batches only

    @property
    def device(self) -> torch.device:
        return self.train.device

    def to(self, device: torch.device) -> Dataset:
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )


@dataclass(frozen=True)
class Source:
    """One dataset name: how to load it, and how to learn its shape and classes cheaply.

    `info` answers from what is known of the dataset (a published dataset's shape and classes
    need no files), so `ablate check` can count parameters before anything is downloaded; it
    reads files only where nothing else can tell (an image folder's classes). `ensure` checks
    (or downloads, when `data.download` allows) the files, raising DataMissingError; a sweep
    calls it for every dataset before anything is queued."""

    load: Callable[[DataConfig], Raw]
    info: Callable[[DataConfig], tuple[Shape, int]]
    standard: Stats | None = None  # the dataset's customary normalization constants
    stream: Callable[[DataConfig], Dataset] | None = None  # a DataLoader path for data too large for memory
    ensure: Callable[[DataConfig], None] | None = None  # None: the data needs no files
    kind: str = "image"  # "image": (C, H, W); "sequence": (T, F), T steps of F features

    def __call__(self, cfg: DataConfig) -> Raw:
        return self.load(cfg)


DATASETS: Registry[Source] = Registry("dataset")


def source_for(name: str) -> Source:
    """A registered dataset, or a user's dataset function given by import path."""
    if ":" in name:
        from ablations.plugins.user_data import user_source

        return user_source(name)
    return DATASETS[name]


# ---------------------------------------------------------------- splits and normalization


def split_indices(n: int, n_official_test: int | None, cfg: DataConfig) -> SplitIndices:
    """Val (and test, when the dataset has no official one) carved at random from the training
    pool, fixed by `split_seed`; `subset` keeps a random part of the pool and the same fraction of
    the official test set."""
    gen = torch.Generator().manual_seed(cfg.split_seed)
    order = torch.randperm(n, generator=gen)
    keep = subset_size(cfg.subset, n)
    order = order[:keep]
    if n_official_test is None:
        n_test = round(keep * cfg.test_fraction)
        test, order = order[:n_test], order[n_test:]
        n_val = round(keep * cfg.val_fraction)
    else:
        if keep == n:
            test = torch.arange(n_official_test)
        else:
            m = max(1, round(n_official_test * keep / n))
            test = torch.randperm(n_official_test, generator=gen)[:m].sort().values
        n_val = round(keep * cfg.val_fraction)
    val, train = order[:n_val], order[n_val:]
    if len(train) < 1 or len(val) < 1 or len(test) < 1:
        raise AblationError(
            f"data.name={cfg.name}: {n} examples (subset {keep}) leave an empty train, val or test split; "
            "use a larger data.subset or other val_fraction/test_fraction"
        )
    return SplitIndices(train, val, test)


def subset_size(subset: float | int | None, n: int) -> int:
    if subset is None:
        return n
    if isinstance(subset, float):
        return max(1, round(n * subset))
    return min(n, subset)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dim 1) mean and std over every other dim, in float64 chunks: exact for uint8
    data of any size without a float copy of the whole array. (N, F) features get per-feature stats."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    dims = (0, *range(2, x.dim()))
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk].to(torch.float64)
        total += part.sum(dim=dims)
        squares += part.square().sum(dim=dims)
    count = x.numel() // x.shape[1]
    mean = total / count
    var = (squares - count * mean.square()) / max(1, count - 1)
    return mean.float(), var.clamp_min(0).sqrt().float().clamp_min(1e-8)


def feature_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of sequences (N, T, F) over (N, T). A feature constant over the
    training split gets std 1 (as scikit-learn's StandardScaler does), so a value it never took
    there (a pixel always blank in training) stays finite."""
    mean, std = channel_stats(x.transpose(1, 2).unsqueeze(-1))  # (N, F, T, 1): features as channels
    return mean, torch.where(std < 1e-6 * std.max().clamp_min(1e-8), torch.ones_like(std), std)


def normalization(cfg: DataConfig, train_x: torch.Tensor, source: Source) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) in the units of the raw data, of shape (C, 1, 1) for images (N, C, H, W) and
    (1, F) for sequences (N, T, F): per channel over (N, H, W), per feature over (N, T)."""
    scale = 255.0 if train_x.dtype == torch.uint8 else 1.0
    sequence = train_x.dim() == 3
    if cfg.normalize == "train":
        mean, std = feature_stats(train_x) if sequence else channel_stats(train_x)
    elif cfg.normalize == "standard":
        assert source.standard is not None, "config validation lets `standard` through only with constants"
        mean, std = (torch.tensor(v) * scale for v in source.standard)
    else:  # none: pixels scaled to [0, 1]
        channels = train_x.shape[-1 if sequence else 1]
        mean, std = torch.zeros(channels), torch.full((channels,), scale)
    shape = (1, -1) if sequence else (-1, *[1] * (train_x.dim() - 2))  # broadcasts after the channel
    return mean.view(shape), std.view(shape)


def build(cfg: DataConfig, raw: Raw, source: Source) -> Dataset:
    official = None if raw.test_x is None else len(raw.test_x)
    idx = raw.splits or split_indices(len(raw.y), official, cfg)
    test_x, test_y = (raw.x, raw.y) if raw.test_x is None else (raw.test_x, raw.test_y)
    mean, std = normalization(cfg, raw.x[idx.train], source)

    def make(x: torch.Tensor, y: torch.Tensor) -> Split:
        if x.is_floating_point():  # small float data: normalize once instead of every batch
            return Split(((x - mean) / std).contiguous(), y.contiguous())
        return Split(x.contiguous(), y.contiguous(), mean, std)

    return Dataset(
        cfg.name,
        make(raw.x[idx.train], raw.y[idx.train]),
        make(raw.x[idx.val], raw.y[idx.val]),
        make(test_x[idx.test], test_y[idx.test]),
        raw.num_classes,
        tuple(raw.x.shape[1:]),
    )


# ---------------------------------------------------------------- loading, once per process


def loading_key(cfg: DataConfig) -> str:
    return json.dumps(cfg.model_dump(exclude=BATCH_FIELDS), sort_keys=True)


@functools.lru_cache(maxsize=2)
def _load_cpu(key: str) -> Dataset:
    from ablations.config import DataConfig

    cfg = DataConfig.model_validate_json(key)
    source = source_for(cfg.name)
    if not cfg.in_memory and source.stream is not None:
        return source.stream(cfg)
    loaded = source(cfg)  # a user's source may stream a dataset too large for memory itself
    return loaded if isinstance(loaded, Dataset) else build(cfg, loaded, source)


@functools.lru_cache(maxsize=2)
def _load_on(key: str, device: str) -> Dataset:
    data = _load_cpu(key)
    return data if device == "cpu" else data.to(torch.device(device))


def load_dataset(cfg: DataConfig, device: torch.device | str = "cpu") -> Dataset:
    """Load once per process and device (cached by the loading fields of the config); the
    augmentation and loader settings of `cfg` come with the returned dataset."""
    data = _load_on(loading_key(cfg), str(torch.device(device)))
    return dataclasses.replace(data, augment=Augment(cfg.crop_padding, cfg.flip, cfg.cutout))


def dataset_info(cfg: DataConfig) -> tuple[Shape, int]:
    """(input_shape, num_classes) without loading the data, and for a published dataset without
    its files; raises DataMissingError only when the answer is in files that are not there."""
    return source_for(cfg.name).info(cfg)


def require_datasets(configs: Iterable[DataConfig]) -> None:
    """Check (or download) every distinct dataset a sweep will use, before anything trains."""
    seen: set[str] = set()
    for cfg in configs:
        key = loading_key(cfg)
        if key not in seen:
            seen.add(key)
            source = source_for(cfg.name)
            if source.ensure is not None:
                source.ensure(cfg)
            source.info(cfg)
