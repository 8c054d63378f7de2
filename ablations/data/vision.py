"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in torchvision's on-disk layout under `data.root`.

File names, folders and download URLs come from torchvision's dataset classes, so the layout is
exactly the one `torchvision.datasets.X(root, download=True)` writes. The classes are looked up
when a dataset is first used: importing torchvision takes seconds, and a sweep on other data
(or `ablate check`, which knows these shapes) should not pay for it. torchvision downloads; we
read. CIFAR batches are read here rather than by `torchvision.datasets.CIFAR10`, which refuses
files whose MD5 differs from the official archive (a re-packed or trimmed copy) and decodes into
HWC numpy; we keep CHW uint8 tensors.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ablations.data.datasets import DATASETS, DataMissingError, Raw, Shape, Source

if TYPE_CHECKING:
    from ablations.config import DataConfig


def _tv(name: str) -> type:
    """torchvision's dataset class `name` (MNIST, CIFAR10, ...)."""
    from torchvision import datasets

    return getattr(datasets, name)


def _download(cls: type, cfg: DataConfig, where: Path, wanted: str) -> None:
    try:
        cls(cfg.root, train=True, download=True)
    except Exception as err:  # noqa: BLE001 - no network, a proxy, a bad mirror: all the same to the user
        reason = " ".join(str(err).split())[:300] or type(err).__name__  # torchvision's is multi-line
        raise DataMissingError(
            f"data.name={cfg.name}: download into {where}/ failed ({reason}); put {wanted} there by hand"
        ) from None


# ---------------------------------------------------------------- MNIST and Fashion-MNIST (idx files)


def _mnist_source(name: str, class_name: str, num_classes: int, standard: tuple) -> Source:
    def raw_folder(cfg: DataConfig) -> Path:
        return Path(cfg.root) / class_name / "raw"  # torchvision's MNIST.raw_folder

    def files() -> list[str]:
        return [Path(filename).stem for filename, _ in _tv(class_name).resources]  # without .gz

    def ensure(cfg: DataConfig) -> None:
        cls = _tv(class_name)
        folder = raw_folder(cfg)
        for stem in files():  # the .gz files as downloaded: decompress them, as torchvision's download does
            packed = folder / f"{stem}.gz"
            if not (folder / stem).is_file() and packed.is_file():
                with gzip.open(packed, "rb") as src, open(folder / stem, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        wanted = ", ".join(f"{s}.gz" for s in files())
        if cfg.download and any(not (folder / s).is_file() for s in files()):
            _download(cls, cfg, folder, wanted)
        missing = [s for s in files() if not (folder / s).is_file()]
        if missing:
            raise DataMissingError(
                f"data.name={name}: {', '.join(missing)} not found in {folder}/; put {wanted} "
                f"(from {cls.mirrors[0]}) in that folder, or set data.download: true"
            )

    def info(cfg: DataConfig) -> tuple[Shape, int]:
        return (1, 28, 28), num_classes

    def load(cfg: DataConfig) -> Raw:
        ensure(cfg)
        cls = _tv(class_name)
        try:
            train, test = cls(cfg.root, train=True), cls(cfg.root, train=False)
        except (ValueError, TypeError, AssertionError) as err:
            raise DataMissingError(
                f"data.name={name}: the idx files in {raw_folder(cfg)}/ are not valid ({err}); replace them"
            ) from None
        return Raw(train.data.unsqueeze(1), train.targets, num_classes, test.data.unsqueeze(1), test.targets)

    return Source(load, info, standard, ensure=ensure)


# Per-channel mean and std of the training images, as customarily quoted for each dataset.
DATASETS.register("mnist")(_mnist_source("mnist", "MNIST", 10, ((0.1307,), (0.3081,))))
DATASETS.register("fashion_mnist")(_mnist_source("fashion_mnist", "FashionMNIST", 10, ((0.2860,), (0.3530,))))


# ---------------------------------------------------------------- CIFAR (python pickle batches)


def _cifar_source(name: str, class_name: str, num_classes: int, standard: tuple) -> Source:
    def files() -> tuple[list[str], list[str]]:
        cls = _tv(class_name)
        return [f for f, _ in cls.train_list], [f for f, _ in cls.test_list]

    def folder(cfg: DataConfig) -> Path:
        return Path(cfg.root) / _tv(class_name).base_folder

    def ensure(cfg: DataConfig) -> None:
        cls = _tv(class_name)
        train_files, test_files = files()
        where = folder(cfg)
        wanted = f"the batches of {cls.filename} ({', '.join(train_files + test_files)})"
        if cfg.download and any(not (where / f).is_file() for f in train_files + test_files):
            _download(cls, cfg, where, wanted)
        missing = [f for f in train_files + test_files if not (where / f).is_file()]
        if missing:
            raise DataMissingError(
                f"data.name={name}: {', '.join(missing)} not found in {where}/; extract {cls.filename} "
                f"(from {cls.url}) into {cfg.root}/ so that {where}/ holds them, or set data.download: true"
            )

    def read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")  # the batches are Python 2 pickles
            labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
            x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # rows of R, G, B planes
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError) as err:
            raise DataMissingError(
                f"data.name={name}: {path} is not a CIFAR python batch ({err}); replace it"
            ) from None
        return torch.from_numpy(x.copy()), torch.tensor(labels, dtype=torch.long)

    def load(cfg: DataConfig) -> Raw:
        ensure(cfg)
        train_files, test_files = files()
        train = [read(folder(cfg) / f) for f in train_files]
        test = [read(folder(cfg) / f) for f in test_files]
        return Raw(
            torch.cat([x for x, _ in train]),
            torch.cat([y for _, y in train]),
            num_classes,
            torch.cat([x for x, _ in test]),
            torch.cat([y for _, y in test]),
        )

    def info(cfg: DataConfig) -> tuple[Shape, int]:
        return (3, 32, 32), num_classes

    return Source(load, info, standard, ensure=ensure)


DATASETS.register("cifar10")(
    _cifar_source("cifar10", "CIFAR10", 10, ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)))
)
DATASETS.register("cifar100")(
    _cifar_source("cifar100", "CIFAR100", 100, ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)))
)
