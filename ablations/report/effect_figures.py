"""Figures of effects: two-way interaction heatmaps and the degradation plot (training error vs depth,
plain vs residual). Same conventions as figures.py: Agg `Figure` objects, one PNG per function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablations.report.anova import interaction_tests, significant
from ablations.report.figures import Factors, _grid, _save
from ablations.report.stats import mean_ci, scored

DEPTH = "depth"
RESIDUAL = ("residual", "model.residual")  # short name if the factor catalog registers one


def interaction_heatmaps(
    trials: pd.DataFrame, factors: Factors, metric: str, out_dir: Path, pure_error: bool = True
) -> str | None:
    """One heatmap of mean objective per estimable pair of factors; a flagged interaction says so in the title."""
    ok = scored(trials)
    tests = interaction_tests(ok, list(factors), pure_error=pure_error)
    if tests.empty:
        return None
    fig, axes = _grid(len(tests))
    for ax, (_, test) in zip(axes, tests.iterrows(), strict=True):
        a, b = test["a"], test["b"]
        grid = np.full((len(factors[a]), len(factors[b])), np.nan)
        for i, level_a in enumerate(factors[a]):
            for j, level_b in enumerate(factors[b]):
                values = ok.loc[(ok[a] == level_a) & (ok[b] == level_b), "objective"]
                if len(values):
                    grid[i, j] = values.mean()
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ink = "black" if image.norm(value) > 0.6 else "white"  # readable on viridis' light end
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", color=ink, fontsize="small")
        ax.set_xticks(range(len(factors[b])), [str(v) for v in factors[b]])
        ax.set_yticks(range(len(factors[a])), [str(v) for v in factors[a]])
        flag = "interaction p<0.05" if significant(test["p"]) else "no sig. interaction"
        ax.set(xlabel=b, ylabel=a, title=f"{a} × {b} ({flag})")
        fig.colorbar(image, ax=ax, label=metric)
    return _save(fig, out_dir, "interactions.png")


def residual_column(trials: pd.DataFrame) -> str | None:
    return next((c for c in RESIDUAL if c in trials.columns), None)


def degradation(trials: pd.DataFrame, out_dir: Path) -> str | None:
    """Training error (1 - train_acc at the last epoch, completed trials) vs depth, one line per
    residual level: the plot of He et al. 2016, where plain nets get worse with depth and residual ones not."""
    residual = residual_column(trials)
    if residual is None or DEPTH not in trials.columns:
        return None
    done = trials[(trials["outcome"] == "complete") & trials["train_acc"].notna()]
    if done.empty or done[DEPTH].nunique() < 2:
        return None
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for level, group in done.groupby(residual, sort=True):
        depths = sorted(group[DEPTH].unique())
        stats = [mean_ci(1 - group.loc[group[DEPTH] == d, "train_acc"]) for d in depths]
        mean = np.array([s[0] for s in stats])
        low = np.nan_to_num(mean - np.array([s[2] for s in stats]))
        high = np.nan_to_num(np.array([s[3] for s in stats]) - mean)
        name = {"true": "residual", "1": "residual", "false": "plain", "0": "plain"}.get(str(level).lower(), "")
        ax.errorbar(depths, mean, yerr=[low, high], marker="o", capsize=4, label=f"{name} ({residual}={level})")
    ax.set(xlabel="depth (hidden layers)", ylabel="training error (1 - train acc), mean, 95% CI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "degradation.png")
