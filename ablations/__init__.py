"""ablations: ablation sweeps over the design choices of a neural network.

The Python API (`ablations.sweep`, `ablations.make_report`) loads torch and Optuna only when first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_report", "sweep"]


def __getattr__(name: str) -> Any:
    if name in ("sweep", "make_report"):
        from ablations import api

        return getattr(api, name)
    raise AttributeError(f"module 'ablations' has no attribute {name!r}")
