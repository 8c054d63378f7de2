"""Your own images, in torchvision's ImageFolder layout: `data.path/<class>/<image>`.

If `data.path` holds `train/` and `test/`, each in that layout, `test/` is the official test set;
otherwise the test split is carved from the images like the val split. Images are converted to
RGB and resized to `data.image_size` squared.

`data.in_memory: true` (the default) decodes every image once into a uint8 tensor: the fast
path. `data.in_memory: false` is for folders too large for memory: a DataLoader with
`data.workers` processes decodes images per batch, and the batches then get the same on-device
normalization and augmentation as the fast path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, SubsetRandomSampler

from ablations.data.augment import Augment
from ablations.data.datasets import (
    DATASETS,
    DataMissingError,
    Dataset,
    Raw,
    Shape,
    Source,
    SplitIndices,
    normalization,
    prepare,
    split_indices,
)

if TYPE_CHECKING:
    from torchvision import datasets as tv

    from ablations.config import DataConfig

STATS_SAMPLE = 1024  # training images decoded to estimate the normalization of a streamed folder


class Decode:
    """PIL image -> (3, size, size) uint8 tensor. A class, not a lambda: DataLoader workers pickle it."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = img.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def _roots(cfg: DataConfig) -> tuple[Path, Path | None]:
    path = Path(cfg.path or "")
    if not path.is_dir():
        raise DataMissingError(
            f"data.path={cfg.path}: no such folder; image_folder needs a folder with one subfolder of images "
            "per class (data.path/<class>/<image>.png), optionally split into train/ and test/"
        )
    if (path / "train").is_dir() and (path / "test").is_dir():
        return path / "train", path / "test"
    return path, None


def _folder(root: Path, cfg: DataConfig) -> tv.ImageFolder:
    from torchvision.datasets import ImageFolder  # here, not at the top: torchvision takes seconds to import

    try:
        return ImageFolder(str(root), transform=Decode(cfg.image_size))
    except FileNotFoundError as err:  # no class folders, or a class folder without images
        raise DataMissingError(
            f"data.path={cfg.path}: {err}; put the images of each class in its own subfolder of {root}/"
        ) from None


def _folders(cfg: DataConfig) -> tuple[tv.ImageFolder, tv.ImageFolder | None]:
    train_root, test_root = _roots(cfg)
    train = _folder(train_root, cfg)
    test = None if test_root is None else _folder(test_root, cfg)
    if test is not None and test.class_to_idx != train.class_to_idx:
        raise DataMissingError(
            f"data.path={cfg.path}: train/ and test/ have different class folders; give both the same classes"
        )
    return train, test


def _info(cfg: DataConfig) -> tuple[Shape, int]:
    from torchvision.datasets.folder import find_classes

    train_root, _ = _roots(cfg)
    try:
        classes, _ = find_classes(str(train_root))
    except FileNotFoundError as err:
        raise DataMissingError(f"data.path={cfg.path}: {err}; put each class's images in its own subfolder") from None
    return (3, cfg.image_size, cfg.image_size), len(classes)


def _decode(folder: tv.ImageFolder, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = []
    for i in indices.tolist():
        try:
            images.append(folder[i][0])
        except OSError as err:  # PIL's UnidentifiedImageError, a truncated file
            path = folder.samples[i][0]
            raise DataMissingError(
                f"data.path: {path} cannot be read as an image ({err}); replace or remove it"
            ) from None
    targets = torch.tensor(folder.targets, dtype=torch.long)
    return torch.stack(images), targets[indices]


def _load(cfg: DataConfig) -> Raw:
    """Decode only the images the splits keep: with `data.subset`, a quick run on a large folder
    reads a few files, not all of them."""
    train, test = _folders(cfg)
    idx = split_indices(len(train), None if test is None else len(test), cfg)
    pool = [idx.train, idx.val] + ([idx.test] if test is None else [])
    needed = torch.cat(pool).unique()  # sorted
    position = torch.full((len(train),), -1, dtype=torch.long)
    position[needed] = torch.arange(len(needed))
    x, y = _decode(train, needed)
    if test is None:
        return Raw(x, y, len(train.classes), splits=SplitIndices(*(position[i] for i in pool)))
    test_x, test_y = _decode(test, idx.test)
    splits = SplitIndices(position[idx.train], position[idx.val], torch.arange(len(idx.test)))
    return Raw(x, y, len(train.classes), test_x, test_y, splits)


@dataclass(frozen=True)
class FolderSplit:
    """A split of a folder that is decoded batch by batch by DataLoader workers."""

    folder: tv.ImageFolder
    indices: Sequence[int]
    mean: torch.Tensor
    std: torch.Tensor
    workers: int
    device: torch.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.indices)

    def to(self, device: torch.device) -> FolderSplit:
        return dataclasses.replace(self, device=device, mean=self.mean.to(device), std=self.std.to(device))

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        aug_generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = self.indices if generator is None else SubsetRandomSampler(self.indices, generator=generator)
        loader = DataLoader(
            self.folder,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",  # pinned batches copy to the GPU asynchronously
        )
        for x, y in loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield prepare(x, self.mean, self.std, augment, aug_generator), y


def _stream(cfg: DataConfig) -> Dataset:
    train, test = _folders(cfg)
    idx = split_indices(len(train), None if test is None else len(test), cfg)
    step = max(1, len(idx.train) // STATS_SAMPLE)
    sample = torch.stack([train[i][0] for i in idx.train[::step][:STATS_SAMPLE].tolist()])
    mean, std = normalization(cfg, sample, DATASETS["image_folder"])

    def split(folder: tv.ImageFolder, indices: torch.Tensor) -> FolderSplit:
        return FolderSplit(folder, indices.tolist(), mean, std, cfg.workers)

    return Dataset(
        "image_folder",
        split(train, idx.train),
        split(train, idx.val),
        split(train if test is None else test, idx.test),
        len(train.classes),
        (3, cfg.image_size, cfg.image_size),
    )


DATASETS.register("image_folder")(Source(_load, _info, stream=_stream))
