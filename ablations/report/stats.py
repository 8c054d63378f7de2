"""Statistics over the tidy trials table: cell leaderboard and per-factor level comparisons.

A trial is scored when it completed or was pruned: both by the last objective value they reported,
so a pruned trial counts at the epoch it stopped. Diverged and failed trials are counted, not scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

SCORED = ("complete", "pruned")
LEVEL_COLUMNS = ["level", "n", "mean", "std", "ci_low", "ci_high", "best", "pruned", "diverged", "failed"]


def scored(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["outcome"].isin(SCORED) & trials["objective"].notna()]


def mean_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample std and the t-based confidence interval of the mean (NaN where undefined)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = stats.t.ppf((1 + confidence) / 2, len(x) - 1) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def diff_ci(a: Any, b: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a Welch t interval: groups may differ in size and spread."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf((1 + confidence) / 2, dof) * se
    return diff, diff - half, diff + half


def pair_keys(frame: pd.DataFrame, others: Sequence[str]) -> np.ndarray:
    """An integer per row naming its other factors' levels and its seed: rows of two levels with the
    same key differ only in the compared factor."""
    keys = [*others, "seed"]
    codes = np.stack([pd.factorize(frame[k].astype(str))[0] for k in keys], axis=1)
    return np.unique(codes, axis=0, return_inverse=True)[1].ravel() if len(frame) else np.zeros(0, int)


def paired_diff(
    a: np.ndarray, keys_a: np.ndarray, b: np.ndarray, keys_b: np.ndarray
) -> tuple[float, float, float, int]:
    """mean(a) - mean(b) over the pairs with equal keys, with a paired t interval.

    Seeds are shared across cells (common random numbers), so a matched pair differs only in the
    compared factor. Returns (diff, low, high, pairs); no pairs when a key repeats within a level
    (the keys leave out a factor that varies, so a partner would not be unique).
    """
    if len(np.unique(keys_a)) < len(keys_a) or len(np.unique(keys_b)) < len(keys_b):
        return math.nan, math.nan, math.nan, 0
    _, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    mean, _, low, high = mean_ci(a[ia] - b[ib])
    return mean, low, high, len(ia)


def _outcomes(group: pd.DataFrame) -> str:
    counts = group["outcome"].value_counts()
    return ", ".join(f"{counts[o]} {o}" for o in ("complete", "pruned", "diverged", "failed") if o in counts)


def _rank(frame: pd.DataFrame, column: str, direction: str) -> pd.DataFrame:
    # Best first by direction; cells or levels without a score go last.
    return frame.sort_values(column, ascending=direction == "minimize", na_position="last", kind="stable")


def leaderboard(trials: pd.DataFrame, direction: str) -> pd.DataFrame:
    """One row per cell: objective mean, std and best over its scored trials, and its outcomes."""
    rows = []
    for cell, group in trials.groupby("cell", sort=False):
        values = scored(group)["objective"]
        mean, std, _, _ = mean_ci(values)
        best = values.max() if direction == "maximize" else values.min()
        rows.append(
            {
                "cell": cell,
                "mean": mean,
                "std": std,
                "n": len(values),
                "best": best,
                "test_acc": group.loc[group["outcome"] == "complete", "test_acc"].mean(),
                "outcomes": _outcomes(group),
            }
        )
    columns = ["cell", "mean", "std", "n", "best", "test_acc", "outcomes"]
    return _rank(pd.DataFrame(rows, columns=columns), "mean", direction).reset_index(drop=True)


def level_table(
    trials: pd.DataFrame, factor: str, levels: list[Any], direction: str, others: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per level of `factor`: its scored trials' statistics and its difference to the best level.

    Each level pools every cell and seed it appears in. `delta` is the level's mean minus the best
    level's mean. Its 95% interval is paired (`paired` > 0: the number of trials matched on the
    `others` factors and the seed) when at least half of the smaller level finds a partner, which
    removes the other factors' and the data order's variation; otherwise a Welch interval of the
    pooled means (e.g. a random fraction of a grid, where few cells differ in one factor only).
    """
    seen = [v for v in trials[factor].dropna().drop_duplicates() if v not in levels]
    ok = scored(trials)
    keys = pair_keys(ok, others)
    rows = []
    for level in [*levels, *seen]:
        group = trials[trials[factor] == level]
        mask = (ok[factor] == level).to_numpy()
        values = ok["objective"].to_numpy()[mask]
        mean, std, low, high = mean_ci(values)
        best = (values.max() if direction == "maximize" else values.min()) if len(values) else math.nan
        rows.append(
            {
                "level": level,
                "n": len(values),
                "mean": mean,
                "std": std,
                "ci_low": low,
                "ci_high": high,
                "best": best,
                "pruned": int((group["outcome"] == "pruned").sum()),
                "diverged": int((group["outcome"] == "diverged").sum()),
                "failed": int((group["outcome"] == "failed").sum()),
                "values": values,
                "keys": keys[mask],
            }
        )
    table = pd.DataFrame(rows, columns=[*LEVEL_COLUMNS, "values", "keys"])
    table = _rank(table, "mean", direction).reset_index(drop=True)
    top = table["values"].iloc[0] if len(table) else np.array([])
    top_keys = table["keys"].iloc[0] if len(table) else np.array([])
    deltas, paired = [], []
    for values, level_keys in zip(table["values"], table["keys"], strict=True):
        diff, low, high, n = paired_diff(values, level_keys, top, top_keys)
        if n < 2 or n < min(len(values), len(top)) / 2:
            (diff, low, high), n = diff_ci(values, top), 0
        deltas.append((diff, low, high))
        paired.append(n)
    table["delta"] = [d[0] for d in deltas]
    table["delta_low"] = [d[1] for d in deltas]
    table["delta_high"] = [d[2] for d in deltas]
    table["paired"] = paired
    return table.drop(columns=["values", "keys"])
