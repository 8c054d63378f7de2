"""Optuna pruners by name, with their keyword arguments taken from the search space YAML.

pruner: {name: median, n_startup_trials: 4, n_warmup_steps: 2}
"""

from __future__ import annotations

import inspect
from typing import Any

import optuna

from ablations.cell_pruner import CellPruner, GapPruner
from ablations.registry import Registry

PRUNERS: Registry = Registry("pruner")
PRUNERS.register("none")(optuna.pruners.NopPruner)
# Median stopping rule (Golovin et al. 2017, Google Vizier): stop a trial whose best objective so
# far is worse than the median of the other trials at the same epoch.
PRUNERS.register("median")(optuna.pruners.MedianPruner)
PRUNERS.register("percentile")(optuna.pruners.PercentilePruner)
# Successive halving (Jamieson & Talwalkar 2016; asynchronous variant of Li et al. 2018).
PRUNERS.register("successive_halving")(optuna.pruners.SuccessiveHalvingPruner)
# Hyperband (Li et al. 2017): several successive-halving brackets with different aggressiveness.
PRUNERS.register("hyperband")(optuna.pruners.HyperbandPruner)
# Per-cell percentile rule: seeds are replicates, a cell is kept or stopped as a whole.
PRUNERS.register("cell")(CellPruner)
# Per-cell test against the best cell: stop only what is clearly and confidently worse.
PRUNERS.register("gap")(GapPruner)


def check_pruner_args(name: str, args: dict[str, Any]) -> None:
    """Raise ValueError naming the bad argument and the allowed ones."""
    pruner_cls = PRUNERS[name]
    allowed = [p for p in inspect.signature(pruner_cls).parameters if p != "self"]
    for arg in args:
        if arg not in allowed:
            hint = ", ".join(allowed) if allowed else "none"
            raise ValueError(f"unknown argument {arg!r} for pruner {name!r}; allowed: {hint}")
    try:
        pruner_cls(**args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad arguments for pruner {name!r}: {err}") from None


def pruner_setting(name: str, args: dict[str, Any], key: str, fallback: Any) -> Any:
    """An argument of pruner `name`: as given in the space, else the pruner's own default, else
    `fallback` (for a pruner without that argument, or one whose default is not a plain value)."""
    if key in args:
        return args[key]
    param = inspect.signature(PRUNERS[name]).parameters.get(key)
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default


def make_pruner(name: str, args: dict[str, Any]) -> optuna.pruners.BasePruner:
    return PRUNERS[name](**args)
