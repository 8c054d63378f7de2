"""Tiny datasets written in the real on-disk formats, for the loaders to read as they would read
the downloaded files: MNIST idx `.gz` files, CIFAR python pickle batches, a folder of PNGs.

Every image shows its class: a bright block at a class-dependent place on a noisy background, so
a model trained on the files beats chance only if images and labels were read in step.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def class_images(labels: np.ndarray, channels: int, size: int, seed: int) -> np.ndarray:
    """(N, C, size, size) uint8: noise plus a bright 4x4 block whose place depends on the class."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, size=(len(labels), channels, size, size), dtype=np.uint8)
    cells = size // 4
    for i, label in enumerate(labels):
        row, col = divmod(int(label) % (cells * cells), cells)
        x[i, :, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] = 250
    return x


def labels_for(n: int, classes: int) -> np.ndarray:
    return (np.arange(n) % classes).astype(np.uint8 if classes <= 256 else np.int64)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The idx format: zero, zero, type byte 0x08 (uint8), number of dims, big-endian int32 dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 300, n_test: int = 100) -> Path:
    """`root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`, as torchvision downloads them."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        labels = labels_for(n, 10)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", class_images(labels, 1, 28, seed)[:, 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return raw


def write_cifar(root: Path, classes: int = 10, n_per_batch: int = 60, n_test: int = 50) -> Path:
    """`cifar-10-batches-py/data_batch_1..5, test_batch` or `cifar-100-python/train, test`: pickled
    dicts whose `data` rows are 3072 bytes (the R, G and B planes of a 32x32 image)."""
    if classes == 10:
        folder, label_key = root / "cifar-10-batches-py", "labels"
        batches = [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]
    else:
        folder, label_key = root / "cifar-100-python", "fine_labels"
        batches = [("train", 5 * n_per_batch), ("test", n_test)]
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, n) in enumerate(batches):
        labels = labels_for(n, classes).astype(int)
        entry = {"data": class_images(labels, 3, 32, seed).reshape(n, 3072), label_key: labels.tolist()}
        if classes == 100:
            entry["coarse_labels"] = (labels // 5).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    return folder


def write_png_folder(root: Path, classes: int = 3, per_class: int = 20, size: int = 12, seed: int = 0) -> Path:
    """`root/class_<k>/img_<i>.png`, RGB images of `size` pixels (the loader resizes them)."""
    labels = labels_for(classes * per_class, classes)
    images = class_images(labels, 3, size, seed)
    for i, (label, image) in enumerate(zip(labels, images, strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"img_{i}.png")
    return root
