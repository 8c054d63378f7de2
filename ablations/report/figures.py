"""Report figures, drawn on matplotlib `Figure` objects (Agg canvas) so no GUI or global pyplot state.

Each function saves one PNG into `out_dir` and returns its file name, or None when there is
nothing to draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablations.report.stats import level_table

CURVE_OUTCOMES = ("complete", "pruned", "diverged")  # failed trials are bugs, not results


def _grid(n: int) -> tuple[Figure, list[Any]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.8 * cols, 3.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    # No timestamp or version in the PNG: the same table gives the same bytes.
    fig.savefig(out_dir / name, dpi=110, metadata={"Software": None})
    return name


Factors = dict[str, list[Any]]  # display name -> levels, in the space's order


def learning_curves(history: pd.DataFrame, factors: Factors, metric: str, out_dir: Path) -> str | None:
    """Per factor, the objective per epoch: one line per level, mean over its trials, band = ±1 std."""
    history = history[history["outcome"].isin(CURVE_OUTCOMES) & history["objective"].notna()]
    if history.empty:
        return None
    groups = factors or {"all trials": [None]}
    fig, axes = _grid(len(groups))
    for ax, (factor, levels) in zip(axes, groups.items(), strict=True):
        for level in levels:
            part = history if level is None else history[history[factor] == level]
            if part.empty:
                continue
            by_epoch = part.groupby("epoch")["objective"]
            mean, std = by_epoch.mean(), by_epoch.std().fillna(0.0)
            label = "mean" if level is None else f"{level} (n={part['key'].nunique()})"
            (line,) = ax.plot(mean.index, mean.to_numpy(), marker=".", label=label)
            ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set(title=factor, xlabel="epoch", ylabel=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out_dir, "curves.png")


def level_means(
    trials: pd.DataFrame,
    factors: Factors,
    metric: str,
    direction: str,
    out_dir: Path,
) -> str | None:
    """Per factor, each level's mean objective (scored trials) with its 95% t interval."""
    tables = {f: level_table(trials, f, levels, direction) for f, levels in factors.items()}
    tables = {f: t[t["n"] > 0] for f, t in tables.items() if (t["n"] > 0).any()}
    if not tables:
        return None
    fig, axes = _grid(len(tables))
    for ax, (factor, table) in zip(axes, tables.items(), strict=True):
        # Keep the space's level order on the x axis, not the ranking.
        rank = {str(level): i for i, level in enumerate(factors[factor])}
        table = table.iloc[np.argsort([rank.get(str(v), len(rank)) for v in table["level"]], kind="stable")]
        labels = [str(v) for v in table["level"]]
        low = (table["mean"] - table["ci_low"]).fillna(0.0)
        high = (table["ci_high"] - table["mean"]).fillna(0.0)
        # Points, not bars: accuracies sit far from zero, and a bar's length would mean nothing.
        ax.errorbar(labels, table["mean"], yerr=[low, high], fmt="o", capsize=5)
        ax.margins(x=0.2)
        ax.set(title=factor, xlabel=factor, ylabel=f"{metric} (mean, 95% CI)")
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_dir, "levels.png")
