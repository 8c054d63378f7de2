"""The training device, checked at the edge: a device that is not there is bad input."""

from __future__ import annotations

import os
import re

import torch

from ablations.errors import AblationError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def resolve_device(option: str) -> torch.device:
    if not DEVICE_PATTERN.match(option):
        raise AblationError(f"--device {option!r}: expected auto, cpu, cuda or cuda:N")
    if option == "auto":
        return _prepare_cuda(torch.device("cuda")) if torch.cuda.is_available() else torch.device("cpu")
    if option == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise AblationError(f"--device {option}: no CUDA device is visible on this machine; use --device cpu or auto")
    device = torch.device(option)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise AblationError(
            f"--device {option}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered 0..{torch.cuda.device_count() - 1}"
        )
    return _prepare_cuda(device)


def _prepare_cuda(device: torch.device) -> torch.device:
    """An ablation trains the same input shapes hundreds of times, so cuDNN's autotuner pays for
    itself; and with `cuda:N`, N becomes the current device so that nothing lands on GPU 0.
    TF32 stays off: `train.precision` is the one switch that trades accuracy for speed."""
    torch.backends.cudnn.benchmark = True
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    return device


def cpu_threads(option: int | None, workers: int = 1) -> int:
    """Torch threads per worker. Auto leaves one core for the W&B service and the storage, and
    splits the rest between workers: small models gain nothing from intra-op threads, and an
    OpenMP pool that competes for a busy core spins and slows an epoch down tenfold."""
    if option is not None:
        if option < 1:
            raise AblationError(f"--threads {option}: give a positive number of threads per worker")
        return option
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, (cores - 1) // max(1, workers))
