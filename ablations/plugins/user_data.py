"""Your data by import path: `data.name: "package.module:callable"`, called with `data.args`.

The callable returns either
- a mapping with `train` and, optionally, `val`, `test` and `num_classes`, or
- one `(x, y)` pair: the training set alone;
where each split is an `(x, y)` pair of tensors or numpy arrays (x: (N, *input_shape), uint8 pixels
or floats; y: (N,) integer class labels) or a map-style `torch.utils.data.Dataset` of `(x, y)` items.
A missing `val` (and `test`) is carved from `train` by `data.split_seed`, as for the built-in
datasets; `num_classes` defaults to the largest label + 1.

Data that fits in memory goes to the fast path (tensors on the training device, batched
augmentation, normalization per batch). Datasets whose estimated size exceeds
`data.memory_limit_mb`, or any with `data.in_memory: false`, are read per batch by a DataLoader
with `data.workers` processes. Anything else returned is bad input: one line that says what was
expected, before any trial runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from ablations.data.datasets import Dataset, Raw, Shape, Source, SplitIndices, normalization, subset_size
from ablations.plugins.imports import PluginError, call_with, resolve

if TYPE_CHECKING:
    from ablations.config import DataConfig

SPLITS = ("train", "val", "test")
STATS_SAMPLE = 1024  # items read to estimate the normalization of a streamed dataset
EXPECTED = (
    "return {'train': (x, y), 'val': ..., 'test': ...} (val/test optional) or one (x, y) pair, where x is "
    "(N, *input_shape) and y is (N,) integer labels (tensors or numpy arrays), or map-style Datasets of (x, y)"
)


def _call(cfg: DataConfig) -> dict[str, Any]:
    """The user's splits, called once per process for a given name and args."""
    return _cached_call(cfg.name, json.dumps(cfg.args, sort_keys=True, default=str))


@functools.lru_cache(maxsize=1)
def _cached_call(name: str, args_json: str) -> dict[str, Any]:
    fn = resolve(name, "data.name")
    try:
        out = call_with(fn, {}, json.loads(args_json), "data")
    except PluginError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's function failed: bad input, before any trial
        raise PluginError(f"data.name: {name} raised {type(err).__name__}: {err}") from None
    got = _splits(out, name)
    # Shapes and classes once per call: counting a Dataset's labels may read every item.
    got["shape"], got["num_classes"] = _shape_and_classes(got, name)
    return got


def _splits(out: Any, name: str) -> dict[str, Any]:
    if isinstance(out, Mapping):
        unknown = set(out) - {*SPLITS, "num_classes"}
        if "train" not in out or unknown:
            what = f"unknown keys {sorted(unknown)}" if unknown else "no 'train' key"
            raise PluginError(f"data.name: {name} returned a mapping with {what}; {EXPECTED}")
        splits = {k: out[k] for k in SPLITS if out.get(k) is not None}
        num_classes = out.get("num_classes")
    elif isinstance(out, (tuple, list)) and len(out) == 2 and not _is_dataset(out[0]):
        splits, num_classes = {"train": tuple(out)}, None
    else:
        raise PluginError(f"data.name: {name} returned {type(out).__name__}; {EXPECTED}")
    checked = {k: _split(v, k, name) for k, v in splits.items()}
    return {"splits": checked, "num_classes": num_classes}


def _is_dataset(v: Any) -> bool:
    return isinstance(v, TorchDataset) or (hasattr(v, "__getitem__") and hasattr(v, "__len__") and not _is_array(v))


def _is_array(v: Any) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray))


def _split(value: Any, split: str, name: str) -> Any:
    """A split as (x tensor, y tensor), or the Dataset as it is."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_array, value)):
        x, y = (torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v for v in value)
        if x.dim() < 2 or y.dim() != 1 or len(x) != len(y):
            raise PluginError(
                f"data.name: {name} returned {split} x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)}; "
                "expected x (N, *input_shape) and y (N,) with the same N"
            )
        if y.is_floating_point() or y.dtype == torch.bool:
            raise PluginError(f"data.name: {name}: {split} labels are {y.dtype}; give integer class labels 0..K-1")
        if x.dtype != torch.uint8 and not x.is_floating_point():
            x = x.float()
        return x, y.long()
    if _is_dataset(value):
        if len(value) == 0:
            raise PluginError(f"data.name: {name} returned an empty {split} Dataset")
        item = value[0]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise PluginError(f"data.name: {name}: {split} Dataset items are {type(item).__name__}; give (x, y) pairs")
        return value
    raise PluginError(f"data.name: {name} returned {type(value).__name__} for {split}; {EXPECTED}")


def _item_x(split: Any) -> torch.Tensor:
    x = split[0] if isinstance(split, tuple) else split[0][0]
    return torch.as_tensor(x)


def _input_shape(split: Any) -> Shape:
    """One example's shape: (x, y) tensors hold N of them, a Dataset's item is one."""
    return tuple(_item_x(split).shape[1 if isinstance(split, tuple) else 0 :])


def _labels(split: Any) -> torch.Tensor:
    if isinstance(split, tuple):
        return split[1]
    if hasattr(split, "targets"):  # torchvision's datasets list their labels without decoding images
        return torch.as_tensor(split.targets)
    return torch.as_tensor([int(split[i][1]) for i in range(len(split))])


def _shape_and_classes(got: dict[str, Any], name: str) -> tuple[Shape, int]:
    splits = got["splits"]
    shape = _input_shape(splits["train"])
    for split, value in splits.items():
        other = _input_shape(value)
        if other != shape:
            raise PluginError(f"data.name: {name}: {split} inputs have shape {other}, train inputs {shape}")
    num_classes = got["num_classes"]
    if num_classes is None:
        num_classes = int(max(_labels(v).max().item() for v in splits.values())) + 1
    return shape, int(num_classes)


def _info(cfg: DataConfig) -> tuple[Shape, int]:
    got = _call(cfg)
    return got["shape"], got["num_classes"]


def _carve(n: int, need_val: bool, need_test: bool, cfg: DataConfig) -> tuple[torch.Tensor, ...]:
    """Indices of train, val, test in the user's training set; val/test only where not given."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    keep = subset_size(cfg.subset, n)
    order = order[:keep]
    n_test = round(keep * cfg.test_fraction) if need_test else 0
    n_val = round(keep * cfg.val_fraction) if need_val else 0
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if len(train) < 1 or (need_val and len(val) < 1) or (need_test and len(test) < 1):
        raise PluginError(
            f"data.name: {cfg.name}: {n} training examples leave an empty train, val or test split; "
            "return more data, a val/test split, or change data.val_fraction/test_fraction/subset"
        )
    return train, val, test


def _materialize(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(split, tuple):
        return split
    xs, ys = zip(*(split[i] for i in range(len(split))), strict=True)
    x = torch.stack([torch.as_tensor(v) for v in xs])
    return (x if x.dtype == torch.uint8 or x.is_floating_point() else x.float()), torch.as_tensor(ys).long()


def _estimated_mb(splits: dict[str, Any]) -> float:
    total = 0
    for split in splits.values():
        x = _item_x(split)
        per_item = x.element_size() * (x.numel() if not isinstance(split, tuple) else x[0].numel())
        total += per_item * len(split if not isinstance(split, tuple) else split[0])
    return total / 2**20


def _streams(cfg: DataConfig, splits: dict[str, Any]) -> bool:
    datasets = any(not isinstance(s, tuple) for s in splits.values())
    return datasets and (not cfg.in_memory or _estimated_mb(splits) > cfg.memory_limit_mb)


def _load(cfg: DataConfig) -> Raw | Dataset:
    splits = _call(cfg)["splits"]
    shape, num_classes = _info(cfg)
    if _streams(cfg, splits):
        return _stream(cfg, splits, shape, num_classes)
    train_x, train_y = _materialize(splits["train"])
    train, val, test = _carve(len(train_y), "val" not in splits, "test" not in splits, cfg)
    xs, ys = [train_x], [train_y]
    if "val" in splits:
        val_x, val_y = _materialize(splits["val"])
        val = torch.arange(len(train_y), len(train_y) + len(val_y))
        xs.append(val_x)
        ys.append(val_y)
    test_x = test_y = None
    if "test" in splits:
        test_x, test_y = _materialize(splits["test"])
        test = torch.arange(len(test_y))
    x, y = torch.cat([t.to(train_x.dtype) for t in xs]), torch.cat(ys)
    return Raw(x, y, num_classes, test_x, test_y, SplitIndices(train, val, test))


def _stream(cfg: DataConfig, splits: dict[str, Any], shape: Shape, num_classes: int) -> Dataset:
    from torch.utils.data import TensorDataset

    from ablations.data.folder import FolderSplit  # a DataLoader over any map-style dataset

    as_dataset = {k: TensorDataset(*v) if isinstance(v, tuple) else v for k, v in splits.items()}
    train_set = as_dataset["train"]
    train, val, test = _carve(len(train_set), "val" not in splits, "test" not in splits, cfg)
    step = max(1, len(train) // STATS_SAMPLE)
    sample = torch.stack([torch.as_tensor(train_set[i][0]) for i in train[::step][:STATS_SAMPLE].tolist()])
    mean, std = normalization(cfg, sample, user_source(cfg.name))

    def split(name: str, indices: torch.Tensor) -> FolderSplit:
        data = as_dataset.get(name, train_set)
        chosen = list(range(len(data))) if name in as_dataset and name != "train" else indices.tolist()
        return FolderSplit(data, chosen, mean, std, cfg.workers)

    return Dataset(cfg.name, split("train", train), split("val", val), split("test", test), num_classes, shape)


@functools.cache
def user_source(name: str) -> Source:
    """The dataset source of an import path: `load` holds it in memory or streams what is too large."""
    return Source(_load, _info)
