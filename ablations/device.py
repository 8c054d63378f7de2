"""The training device, checked at the edge: a device that is not there is bad input."""

from __future__ import annotations

import re

import torch

from ablations.errors import AblationError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def resolve_device(option: str) -> torch.device:
    if not DEVICE_PATTERN.match(option):
        raise AblationError(f"--device {option!r}: expected auto, cpu, cuda or cuda:N")
    if option == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    return device
