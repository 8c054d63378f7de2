"""ablations: ablation sweeps over the design choices of a neural network.

Light on purpose: a training script run in script mode imports `ablations` for `config()` and
`report()` (standard library only); the Python API (`sweep`, `make_report`) loads torch and
Optuna only when first used.
"""

from __future__ import annotations

from typing import Any

from ablations.client import config, report

__all__ = ["config", "report", "sweep", "make_report"]


def __getattr__(name: str) -> Any:
    if name in ("sweep", "make_report"):
        from ablations import api

        return getattr(api, name)
    raise AttributeError(f"module 'ablations' has no attribute {name!r}")
