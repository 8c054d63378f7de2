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


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: accuracies lie in [0, 1], losses and errors are non-negative."""
    if metric.endswith("acc") or metric.endswith("accuracy"):
        return 0.0, 1.0
    if metric.endswith(("loss", "error")):
        return 0.0, math.inf
    return -math.inf, math.inf


def curve_table(history: pd.DataFrame, factors: Factors, metric: str) -> pd.DataFrame:
    """Per factor, level and epoch: n (trials alive at that epoch: they reported a finite objective
    there), their median and the quartiles, clipped to the metric's range. Only trials alive at an
    epoch enter its point, and n says how many: a pruned trial leaves the statistic, visibly."""
    history = history[history["outcome"].isin(CURVE_OUTCOMES) & history["objective"].notna()]
    low, high = metric_range(metric)
    rows = []
    for factor, levels in (factors or {"all trials": [None]}).items():
        for level in levels:
            part = history if level is None else history[history[factor] == level]
            for epoch, values in part.groupby("epoch")["objective"]:
                q25, median, q75 = np.clip(np.quantile(values, [0.25, 0.5, 0.75]), low, high)
                rows.append((factor, level, int(epoch), len(values), median, q25, q75))
    return pd.DataFrame(rows, columns=["factor", "level", "epoch", "n", "median", "q25", "q75"])


def learning_curves(history: pd.DataFrame, factors: Factors, metric: str, out_dir: Path) -> str | None:
    """Per factor, the objective per epoch: one line per level, the median over the trials alive at
    that epoch, band = their quartiles; n is written where it changes (pruning, divergence)."""
    curves = curve_table(history, factors, metric)
    if curves.empty:
        return None
    groups = list(curves["factor"].drop_duplicates())
    fig, axes = _grid(len(groups))
    for ax, factor in zip(axes, groups, strict=True):
        for level, part in curves[curves["factor"] == factor].groupby("level", sort=False, dropna=False):
            n = part["n"].to_numpy()
            name = "all" if level is None or (isinstance(level, float) and math.isnan(level)) else level
            label = f"{name} (n={n[0]})" if n[0] == n[-1] else f"{name} (n={n[0]}→{n[-1]})"
            (line,) = ax.plot(part["epoch"], part["median"], marker=".", label=label)
            ax.fill_between(part["epoch"], part["q25"], part["q75"], color=line.get_color(), alpha=0.2)
            changed = np.flatnonzero(np.diff(n, prepend=-1) != 0)[1:]  # where trials left the average
            for i in changed:
                x, y = part["epoch"].iloc[i], part["median"].iloc[i]
                ax.annotate(f"n={n[i]}", (x, y), fontsize="x-small", color=line.get_color(), xytext=(2, 4),
                            textcoords="offset points")  # fmt: skip
        ax.set(title=factor, xlabel="epoch", ylabel=f"{metric} (median, quartiles)")
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
