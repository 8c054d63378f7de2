"""Input pipeline throughput: samples/s of training batches, without a model.

Compares the suite's fast path (uint8 tensors on the device, index-permutation batches, crop +
flip + cutout batched on the device) with the standard torchvision recipe (a Dataset that makes a
PIL image per sample, `transforms.RandomCrop(32, padding=4)`, `RandomHorizontalFlip`,
`ToTensor`, `Normalize`, `RandomErasing` as cutout, and a DataLoader with workers). Both read
the same synthetic CIFAR-shaped data (uint8, 3x32x32, 10 classes) from memory, so disk and
decoding are out of the picture: this is the cost of batching and augmenting alone.

    python benchmarks/data_pipeline.py                 # CPU, and CUDA when one is visible
    python benchmarks/data_pipeline.py --repeats 3 --size 20000

Prints a markdown table: the median over `--repeats` epochs of each pipeline, after one warm-up epoch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from ablations.config import DataConfig
from ablations.data import load_dataset
from ablations.device import cpu_threads

CUTOUT = 8  # side of the square (DeVries & Taylor use 16 on CIFAR-10; neither pipeline's cost depends on it)


class PilDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: a PIL image from an HWC uint8 array, then transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as torchvision keeps CIFAR
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def torchvision_loader(cfg: DataConfig, batch_size: int, workers: int) -> DataLoader:
    data = load_dataset(cfg)
    mean = (data.train.mean.flatten() / 255).tolist()
    std = (data.train.std.flatten() / 255).tolist()
    area = CUTOUT * CUTOUT / (32 * 32)
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
            transforms.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=0),
        ]
    )
    dataset = PilDataset(data.train.x, data.train.y, transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0)


def epoch_rate(batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]], device: torch.device) -> float:
    """Samples/s of one pass; batches are moved to `device` and the device is synchronised."""
    seen = 0
    start = time.perf_counter()
    for x, y in batches():
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen / (time.perf_counter() - start)


def median_rate(batches: Callable[[], Iterable], device: torch.device, repeats: int) -> float:
    epoch_rate(batches, device)  # warm-up: worker start, allocator, caches
    return statistics.median(epoch_rate(batches, device) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="images in the synthetic set (train is 60%%)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to compare")
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads(None))
    base = {"name": "synthetic", "synthetic_shape": (3, 32, 32), "synthetic_size": args.size}
    augmented = DataConfig(**base, crop_padding=4, flip=True, cutout=CUTOUT)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"train images: {len(load_dataset(augmented).train)}, batch {args.batch_size}, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats} epochs\n"
    )
    print("| device | pipeline | samples/s |\n| --- | --- | ---: |")
    for device in devices:
        data = load_dataset(augmented, device)
        gens = (torch.Generator().manual_seed(0), torch.Generator(device=device).manual_seed(0))
        rate = median_rate(
            lambda d=data, g=gens: d.train.batches(args.batch_size, g[0], d.augment, g[1]), device, args.repeats
        )
        print(f"| {device.type} | fast path: uint8 on device, batched crop+flip+cutout | {rate:,.0f} |", flush=True)
        for workers in args.workers:
            loader = torchvision_loader(augmented, args.batch_size, workers)
            rate = median_rate(lambda ld=loader: ld, device, args.repeats)
            print(
                f"| {device.type} | torchvision PIL transforms, DataLoader, {workers} workers | {rate:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
